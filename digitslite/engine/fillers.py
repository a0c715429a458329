"""Caffe's weight fillers (filler.hpp): the initial values of a layer's blobs.

Random streams cannot match Caffe's bit for bit (boost mt19937 vs torch), so only the distributions
are reproduced. Values are drawn on the CPU with the given generator (reproducible per seed) and
then copied into the tensor, whatever its device.
"""
import math
from collections.abc import Callable

import torch

from digitslite.caffe import caffe_pb2
from digitslite.caffe.surgery import bilinear_profile
from digitslite.errors import UserError

Filler = caffe_pb2.FillerParameter


def _fans(shape: torch.Size) -> tuple[float, float]:
    """Caffe's literal fans: fan_in = count / shape(0), fan_out = count / shape(1) (count if 1-D)."""
    total = math.prod(shape)
    fan_in = total // shape[0] if len(shape) >= 1 and shape[0] else total
    fan_out = total // shape[1] if len(shape) >= 2 and shape[1] else total
    return fan_in, fan_out


def _variance_n(shape: torch.Size, filler: Filler) -> float:
    """The n in xavier's sqrt(3/n) and msra's sqrt(2/n), chosen by variance_norm."""
    fan_in, fan_out = _fans(shape)
    if filler.variance_norm == Filler.FAN_OUT:
        return fan_out
    if filler.variance_norm == Filler.AVERAGE:
        return (fan_in + fan_out) / 2.0
    return fan_in


# In place: a pipeline stage draws the fillers of every layer (the same random sequence as one
# process), so the largest layer's draw, not three float64 copies of it, sets its memory peak.
def _uniform(shape: torch.Size, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=generator, dtype=torch.float64).mul_(high - low).add_(low)


def _gaussian(shape: torch.Size, mean: float, std: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=torch.float64).mul_(std).add_(mean)


def _constant(shape, filler, generator):
    return torch.full(shape, filler.value, dtype=torch.float64)


def _uniform_filler(shape, filler, generator):
    return _uniform(shape, filler.min, filler.max, generator)


def _gaussian_filler(shape, filler, generator):
    values = _gaussian(shape, filler.mean, filler.std, generator)
    if filler.sparse >= 0:
        # Each weight survives with probability sparse / num_outputs, so every input keeps about
        # `sparse` nonzero outgoing connections.
        keep = filler.sparse / (shape[0] if len(shape) else 1)
        values *= torch.bernoulli(torch.full(shape, keep, dtype=torch.float64), generator=generator)
    return values


def _positive_unitball(shape, filler, generator):
    values = _uniform(shape, 0.0, 1.0, generator)
    rows = values.reshape(shape[0] if len(shape) else 1, -1)
    return (rows / rows.sum(dim=1, keepdim=True)).reshape(shape)


def _xavier(shape, filler, generator):
    bound = math.sqrt(3.0 / _variance_n(shape, filler))
    return _uniform(shape, -bound, bound, generator)


def _msra(shape, filler, generator):
    return _gaussian(shape, 0.0, math.sqrt(2.0 / _variance_n(shape, filler)), generator)


def _bilinear(shape, filler, generator):
    if len(shape) != 4 or shape[2] != shape[3]:
        raise ValueError(f"the bilinear filler needs a 4-D blob with a square kernel, not {tuple(shape)}")
    taps = torch.from_numpy(bilinear_profile(shape[3]))
    return torch.outer(taps, taps).expand(shape).clone()


_FILLERS: dict[str, Callable[[torch.Size, Filler, torch.Generator | None], torch.Tensor]] = {
    "constant": _constant,
    "uniform": _uniform_filler,
    "gaussian": _gaussian_filler,
    "positive_unitball": _positive_unitball,
    "xavier": _xavier,
    "msra": _msra,
    "bilinear": _bilinear,
}


def fill(tensor: torch.Tensor, filler: Filler, generator: torch.Generator | None = None,
         context: str = "filler") -> torch.Tensor:
    """Overwrite `tensor` with values drawn by `filler` and return it.

    An absent filler message reads as Caffe's default, constant 0. `context` names the layer and
    field in error messages, e.g. "layer 'conv1' (Convolution) weight_filler".
    """
    make = _FILLERS.get(filler.type)
    if make is None:
        raise UserError(f"{context}: filler type '{filler.type}' is unknown; "
                        f"use one of {', '.join(sorted(_FILLERS))}")
    if filler.sparse != -1 and filler.type != "gaussian":
        raise UserError(f"{context}: 'sparse' is only supported by the gaussian filler; "
                        "remove it or use type: \"gaussian\"")
    outputs = tensor.shape[0] if tensor.dim() else 1
    if filler.type == "gaussian" and filler.sparse > outputs:
        # The keep probability sparse / outputs would pass 1, which Caffe's Bernoulli draw aborts on.
        raise UserError(f"{context}: sparse {filler.sparse} is more than the blob's {outputs} outputs "
                        f"(each weight is kept with probability sparse / outputs); use at most {outputs}")
    try:
        values = make(tensor.shape, filler, generator)
    except ValueError as problem:
        raise UserError(f"{context}: {problem}; give the blob a shape this filler accepts") from None
    with torch.no_grad():
        tensor.copy_(values)
    return tensor
