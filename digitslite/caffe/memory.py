"""How much memory training a net needs, estimated from its shapes alone, before anything runs.

Activations count twice (value and gradient), parameters four times (value, gradient and up to two
solver histories), all as 4-byte floats. The estimate is a floor: it refuses what cannot fit, and
says which blob is the largest so the message can name what to change.
"""
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from digitslite.caffe import caffe_pb2
from digitslite.caffe.paramshapes import param_shapes
from digitslite.caffe.shapes import infer_shapes

FLOAT_BYTES = 4


@dataclass(frozen=True)
class MemoryEstimate:
    total_bytes: int
    largest: str  # "blob NAME" or "layer NAME's parameters"
    largest_bytes: int


def training_memory(net: caffe_pb2.NetParameter,
                    input_shapes: Mapping[str, Sequence[int]] | None = None) -> MemoryEstimate:
    """The estimate for a filtered TRAIN net whose data layers carry their batch size."""
    sizes: dict[str, int] = {}
    for layer, entry in zip(net.layer, infer_shapes(net, input_shapes), strict=True):
        for top, shape in zip(layer.top, entry.tops, strict=True):
            sizes[f"blob {top}"] = 2 * FLOAT_BYTES * math.prod(shape)
    for name, shapes in param_shapes(net, input_shapes).items():
        if shapes:
            sizes[f"layer {name}'s parameters"] = 4 * FLOAT_BYTES * sum(math.prod(shape) for shape in shapes)
    largest = max(sizes, key=sizes.get, default="nothing")
    return MemoryEstimate(sum(sizes.values()), largest, sizes.get(largest, 0))
