"""Net surgery: carry trained weights into a network of a different shape, as FCN does when it turns
a classifier (AlexNet, VGG) into a fully convolutional net (fcn-reference §b).

Layers pair by name. Each destination layer with parameters ends up as one of:

* copied: the source blobs have the destination's shapes;
* coerced: an InnerProduct weight (O, K) becomes a Convolution weight (O, C, kh, kw) with
  K = C·kh·kw. Caffe stores both row-major, so the numbers keep their order (a reshape);
* expanded: a layer named with `expand_score` whose class count (axis 0 of every blob) differs
  from the source's: the first min(source, destination) classes are copied, the destination's
  other classes are zero, the way FCN zero-initialises its score layers (the layer may also be
  coerced from an InnerProduct);
* interpolated: a layer named with `interp`, or a Deconvolution with no source weights whose
  weight is (C, 1, K, K) or (C, C, K, K), gets bilinear upsampling weights and zero bias;
* left-initialised: no source weights; the layer is written without blobs, so loading the result
  leaves it to its own weight_filler.

Source layers that the destination does not have (or has without parameters), and layers of the
weights file that the source net does not have, are dropped. Any other shape difference is an
error naming the layer and both shapes.
"""
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from digitslite.caffe import caffe_pb2
from digitslite.caffe.caffemodel import Weights, match_weights, read_caffemodel, write_caffemodel
from digitslite.caffe.paramshapes import param_shapes
from digitslite.caffe.prototxt import filter_net, read_net
from digitslite.caffe.shapes import Shape, input_tops
from digitslite.errors import UserError

Action = Literal["copied", "coerced", "expanded", "interpolated", "left-initialised", "dropped"]


class SurgeryError(UserError):
    """Source weights that cannot be carried into the destination network."""

    retry_helps = False  # the shapes stay what they are


@dataclass(frozen=True)
class LayerAction:
    """What surgery did to one layer; shapes are those of the layer's first blob (its weight)."""

    layer: str
    action: Action
    src_shape: Shape | None
    dst_shape: Shape | None

    def as_dict(self) -> dict:
        return {
            "layer": self.layer,
            "action": self.action,
            "src_shape": _listed(self.src_shape),
            "dst_shape": _listed(self.dst_shape),
        }


def _listed(shape: Shape | None) -> list[int] | None:
    return None if shape is None else list(shape)


@dataclass(frozen=True)
class Surgery:
    """The destination's weights by layer name, and one action per layer involved."""

    weights: Weights
    actions: list[LayerAction]


def bilinear_profile(size: int) -> np.ndarray:
    """One axis of Caffe's bilinear filler (caffe-spec §3), in float64: f = ceil(size/2),
    c = (size-1)/(2f), value = 1-|x/f-c|; the kernel is the outer product of two."""
    factor = math.ceil(size / 2)
    centre = (size - 1) / (2 * factor)
    return 1 - np.abs(np.arange(size) / factor - centre)


def bilinear_kernel(size: int) -> np.ndarray:
    """The size x size float32 kernel of Caffe's bilinear filler."""
    profile = bilinear_profile(size)
    return np.outer(profile, profile).astype(np.float32)


def bilinear_weights(shape: Sequence[int], layer: str = "the layer") -> np.ndarray:
    """Upsampling weights for a (C, 1, K, K) grouped or (C, C, K, K) ungrouped deconvolution.

    Grouped: every channel gets the bilinear kernel. Ungrouped: only the diagonal (channel i to
    channel i) does and the rest is zero, so channels do not mix (FCN's `interp`).
    """
    shape = tuple(shape)
    if len(shape) != 4 or shape[2] != shape[3] or shape[1] not in (1, shape[0]):
        raise SurgeryError(
            f"layer '{layer}': bilinear weights need a (C, 1, K, K) or (C, C, K, K) blob, not {shape}; "
            "give the layer a square kernel and either group equal to its channels or as many "
            "outputs as inputs, or do not interpolate it"
        )
    weights = np.zeros(shape, np.float32)
    kernel = bilinear_kernel(shape[2])
    if shape[1] == 1:
        weights[:, 0] = kernel
    else:
        channels = np.arange(shape[0])
        weights[channels, channels] = kernel
    return weights


def _interpolable(shape: Shape) -> bool:
    return len(shape) == 4 and shape[2] == shape[3] and shape[1] in (1, shape[0])


def transplant(
    src_net: caffe_pb2.NetParameter,
    src_weights: Mapping[str, Sequence[np.ndarray]] | caffe_pb2.NetParameter,
    dst_net: caffe_pb2.NetParameter,
    *,
    interp: Iterable[str] = (),
    expand_score: Iterable[str] = (),
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    src_name: str = "the source weights",
    dst_name: str = "the destination net",
) -> Surgery:
    """Carry `src_weights` (which must fit `src_net`) into `dst_net`'s parameter shapes.

    Both nets are taken in their TEST phase. The source weights are first matched to the source
    net by Caffe's loading rules, so legacy blob shapes are normalised and a weights file that does
    not belong to the source net is caught. `input_shapes` (top name -> dims) applies to whichever
    net has that input; a deploy net needs none.
    """
    src_net, dst_net = filter_net(src_net), filter_net(dst_net)
    src_inputs, dst_inputs = _split_input_shapes(input_shapes or {}, src_net, dst_net)
    source = match_weights(src_weights, param_shapes(src_net, src_inputs), source_name=src_name)
    src_layers = {layer.name: layer for layer in src_net.layer}
    dst_layers = {layer.name: layer for layer in dst_net.layer}
    dst_shapes = {name: shapes for name, shapes in param_shapes(dst_net, dst_inputs).items() if shapes}
    interp, expand_score = set(interp), set(expand_score)
    _require_parameter_layers(interp, "--interp", dst_shapes, dst_name)
    _require_parameter_layers(expand_score, "--expand-score", dst_shapes, dst_name)

    weights: Weights = {}
    actions = []
    for name, shapes in dst_shapes.items():
        arrays = source.weights.get(name)
        src_shape = arrays[0].shape if arrays else None
        layer = dst_layers[name]
        if name in interp or (arrays is None and layer.type == "Deconvolution" and _interpolable(shapes[0])):
            bias = [np.zeros(shape, np.float32) for shape in shapes[1:]]
            weights[name] = [bilinear_weights(shapes[0], name), *bias]
            action = "interpolated"
        elif arrays is None:
            action = "left-initialised"
        else:
            fit = _fit_layer(src_layers[name], layer, arrays, shapes, name in expand_score, dst_name)
            action, weights[name] = fit
        actions.append(LayerAction(name, action, src_shape, shapes[0]))
    for name in [*source.weights, *source.ignored]:
        if name not in dst_shapes:
            arrays = source.weights.get(name)
            actions.append(LayerAction(name, "dropped", arrays[0].shape if arrays else None, None))
    return Surgery(weights, actions)


def check_transplant(
    src_net: caffe_pb2.NetParameter,
    dst_net: caffe_pb2.NetParameter,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    **options,
) -> list[LayerAction]:
    """What transplant() would do to each layer, or the SurgeryError it would raise, from the nets'
    parameter shapes alone. No weights are read (zero-stride stand-ins take their place), so a mismatch
    is found before anything is queued to read hundreds of megabytes."""
    src_inputs, _ = _split_input_shapes(input_shapes or {}, filter_net(src_net), filter_net(dst_net))
    stand_ins = {name: [np.broadcast_to(np.float32(0), shape) for shape in shapes]
                 for name, shapes in param_shapes(filter_net(src_net), src_inputs).items() if shapes}
    return transplant(src_net, stand_ins, dst_net, input_shapes=input_shapes, **options).actions


def _split_input_shapes(
    given: Mapping[str, Sequence[int]], src_net: caffe_pb2.NetParameter, dst_net: caffe_pb2.NetParameter
) -> tuple[dict[str, Sequence[int]], dict[str, Sequence[int]]]:
    """The given input shapes that each net has as inputs; a name neither has is an error."""
    src_tops, dst_tops = set(input_tops(src_net)), set(input_tops(dst_net))
    unknown = sorted(set(given) - src_tops - dst_tops)
    if unknown:
        raise SurgeryError(
            f"an input shape is given for {', '.join(repr(n) for n in unknown)}, which is an input of "
            f"neither net (inputs: {', '.join(sorted(src_tops | dst_tops)) or 'none'}); name an input top"
        )
    return (
        {name: dims for name, dims in given.items() if name in src_tops},
        {name: dims for name, dims in given.items() if name in dst_tops},
    )


def _require_parameter_layers(names: set[str], option: str, dst_shapes: Mapping, dst_name: str) -> None:
    unknown = sorted(names - set(dst_shapes))
    if unknown:
        raise SurgeryError(
            f"{dst_name}: {option} names {', '.join(repr(n) for n in unknown)}, which the destination "
            f"net does not have as a layer with parameters; name layers of the destination net"
        )


def _fit_layer(
    src_layer: caffe_pb2.LayerParameter,
    dst_layer: caffe_pb2.LayerParameter,
    arrays: list[np.ndarray],
    shapes: list[Shape],
    expand: bool,
    dst_name: str,
) -> tuple[Action, list[np.ndarray]]:
    """(action, arrays in the destination's shapes) for a layer both nets have."""
    name = dst_layer.name
    if len(arrays) != len(shapes):
        raise SurgeryError(
            f"{dst_name}: layer '{name}' has {len(shapes)} parameter blobs but the source layer has "
            f"{len(arrays)} (check bias_term); make them agree, or rename the layer to initialise it "
            "from scratch"
        )
    coercible = (
        src_layer.type == "InnerProduct"
        and not src_layer.inner_product_param.transpose
        and dst_layer.type == "Convolution"
        and dst_layer.convolution_param.group == 1
    )
    changes, fitted = set(), []
    for index, (array, shape) in enumerate(zip(arrays, shapes, strict=True)):
        if coercible and array.shape != shape and math.prod(array.shape[1:]) == math.prod(shape[1:]):
            array = array.reshape(array.shape[:1] + shape[1:])
            changes.add("coerced")
        if expand and array.shape != shape and array.shape[1:] == shape[1:]:
            array = _expanded(array, shape)
            changes.add("expanded")
        if array.shape != shape:
            raise SurgeryError(
                f"{dst_name}: layer '{name}' blob {index}: the source shape {arrays[index].shape} cannot "
                f"become the destination shape {shape}; rename the layer in the destination net to "
                "initialise it from scratch" + _extra_fix(dst_layer, array.shape, shape)
            )
        fitted.append(array)
    action = "expanded" if "expanded" in changes else "coerced" if changes else "copied"
    return action, fitted


def _extra_fix(dst_layer: caffe_pb2.LayerParameter, src_shape: Shape, dst_shape: Shape) -> str:
    """The option that would fit `src_shape` (already coerced where it could be) into `dst_shape`."""
    if dst_layer.type == "Deconvolution" and _interpolable(dst_shape):
        return f", or pass --interp {dst_layer.name} for bilinear weights"
    if src_shape[1:] == dst_shape[1:] and src_shape[:1] != dst_shape[:1]:
        return f", or pass --expand-score {dst_layer.name} to copy the classes both have"
    return ""


def _expanded(array: np.ndarray, shape: Shape) -> np.ndarray:
    """`array` resized along axis 0 to `shape`: shared classes copied, new ones zero."""
    out = np.zeros(shape, array.dtype)
    shared = min(array.shape[0], shape[0])
    out[:shared] = array[:shared]
    return out


def transplant_files(
    src_net_path: str | os.PathLike,
    src_weights_path: str | os.PathLike,
    dst_net_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    interp: Iterable[str] = (),
    expand_score: Iterable[str] = (),
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> list[LayerAction]:
    """Surgery from files to a new .caffemodel holding the destination net and its weights."""
    dst_net = read_net(dst_net_path)
    surgery = transplant(
        read_net(src_net_path),
        read_caffemodel(src_weights_path),
        dst_net,
        interp=interp,
        expand_score=expand_score,
        input_shapes=input_shapes,
        src_name=str(src_weights_path),
        dst_name=str(dst_net_path),
    )
    write_caffemodel(out_path, dst_net, surgery.weights)
    return surgery.actions
