"""Static shape inference with Caffe's rules (caffe-spec §2.6, §8).

The engine sizes every parameter blob from these shapes, and `digitslite net check` uses them to
refuse a bad net before any tensor exists, so each rule follows Caffe's own Reshape/LayerSetUp
checks and every refusal says which layer, where and how to fix it.

Shapes of a net's inputs come from `Input` layers (`input_param.shape`) or from the caller's
`input_shapes` (top name -> dims), which win over the prototxt. Data-source layers (`Data`,
`ImageData`, and `Python` layers without bottoms) read records whose shape only the dataset knows,
so the caller gives it:
* as N,C,H,W or as C,H,W; a 3-value shape gets N from `batch_size` (1 for Python layers);
* `transform_param.crop_size` then replaces H and W, and ImageData's `new_height`/`new_width`
  resize first, as Caffe does to each record;
* a Data/ImageData layer's second top is Caffe's label vector, shape (N,);
* any other data top not given (the label of a segmentation net, whether its own Data layer or a
  Python layer's second top) is (N,1,H,W) after the first data top's shape.
An `HDF5Data` layer's files say their shapes: tops not given are read from its first file
(digitslite.caffe.hdf5_source).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from digitslite.caffe import caffe_pb2, hdf5_source
from digitslite.errors import UserError

if TYPE_CHECKING:
    from digitslite.caffe.sourcemap import SourceMap

Shape = tuple[int, ...]
Layer = caffe_pb2.LayerParameter


class ShapeError(UserError):
    """A net whose layers do not fit Caffe's shape rules, or whose input shapes are unknown."""


class RuleError(Exception):
    """A layer breaks one of Caffe's rules; the message says what and how to fix it, and the
    caller (shape inference, coord map) adds which layer and where."""


# ----------------------------------------------------------------------------------------------
# Sliding-window geometry, shared with the coordinate map


@dataclass(frozen=True)
class Window:
    """Kernel, stride, pad and dilation of a convolution or pooling, one entry per spatial axis."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    dilation: tuple[int, ...]

    @property
    def extent(self) -> tuple[int, ...]:
        """The span of the dilated kernel: dilation·(kernel − 1) + 1."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation, strict=True))


def _per_axis(values: Sequence[int], default: int, count: int, field: str) -> tuple[int, ...]:
    if not values:
        return (default,) * count
    if len(values) == 1:
        return (values[0],) * count
    if len(values) == count:
        return tuple(values)
    raise RuleError(f"{field} has {len(values)} values for {count} spatial axes; give 1 or {count}")


def _conv_field(param, repeated: str, base: str, default: int | None, count: int) -> tuple[int, ...]:
    """One convolution field, given either as the repeated `repeated` or as `base`_h/`base`_w."""
    has_h, has_w = param.HasField(f"{base}_h"), param.HasField(f"{base}_w")
    values = list(getattr(param, repeated))
    if has_h or has_w:
        if not (has_h and has_w):
            raise RuleError(f"{base}_h and {base}_w must be given together")
        if values:
            raise RuleError(f"give either {repeated} or {base}_h/{base}_w, not both")
        if count != 2:
            raise RuleError(f"{base}_h/{base}_w only work with 2 spatial axes (this layer has {count}); "
                            f"use {repeated}")
        return getattr(param, f"{base}_h"), getattr(param, f"{base}_w")
    if count == 0:
        return ()
    if default is None and not values:
        raise RuleError(f"the kernel size is not set: give convolution_param {{ {repeated}: K }}")
    return _per_axis(values, default or 0, count, repeated)


def conv_window(param: caffe_pb2.ConvolutionParameter, num_spatial: int | None = None) -> Window:
    """The window of a Convolution/Deconvolution over `num_spatial` axes (None: as many as the
    parameters themselves give, 2 when kernel_h/kernel_w are used, else the longest list)."""
    if num_spatial is None:
        uses_hw = any(param.HasField(f) for f in ("kernel_h", "kernel_w", "stride_h", "stride_w",
                                                   "pad_h", "pad_w"))
        lists = (param.kernel_size, param.stride, param.pad, param.dilation)
        num_spatial = 2 if uses_hw else max(1, *(len(values) for values in lists))
    window = Window(kernel=_conv_field(param, "kernel_size", "kernel", None, num_spatial),
                    stride=_conv_field(param, "stride", "stride", 1, num_spatial),
                    pad=_conv_field(param, "pad", "pad", 0, num_spatial),
                    dilation=_per_axis(param.dilation, 1, num_spatial, "dilation"))
    for field in ("kernel", "stride", "dilation"):
        if 0 in getattr(window, field):
            raise RuleError(f"{field} must be positive, got {list(getattr(window, field))}")
    return window


def _pool_pair(param, base: str, default: int | None) -> tuple[int, int]:
    scalar = "kernel_size" if base == "kernel" else base
    has_scalar, has_h, has_w = (param.HasField(f) for f in (scalar, f"{base}_h", f"{base}_w"))
    if has_h or has_w:
        if has_scalar or not (has_h and has_w):
            raise RuleError(f"give either {scalar} or both {base}_h and {base}_w")
        return getattr(param, f"{base}_h"), getattr(param, f"{base}_w")
    if not has_scalar and default is None:
        raise RuleError("the kernel size is not set: give pooling_param { kernel_size: K } "
                        "(or global_pooling: true)")
    value = getattr(param, scalar) if has_scalar else default
    return value, value


def pool_window(param: caffe_pb2.PoolingParameter) -> Window:
    """The window of a non-global Pooling layer (always 2 spatial axes)."""
    window = Window(kernel=_pool_pair(param, "kernel", None), stride=_pool_pair(param, "stride", 1),
                    pad=_pool_pair(param, "pad", 0), dilation=(1, 1))
    if 0 in window.kernel or 0 in window.stride:
        raise RuleError(f"kernel and stride must be positive, got kernel {list(window.kernel)} "
                        f"stride {list(window.stride)}")
    return window


# ----------------------------------------------------------------------------------------------
# Small helpers


def canonical_axis(axis: int, num_axes: int) -> int:
    """Caffe's CanonicalAxisIndex: a negative axis counts from the end."""
    if not -num_axes <= axis < num_axes:
        raise RuleError(f"axis {axis} is out of range for a {num_axes}-axis blob; "
                        f"use an axis in [{-num_axes}, {num_axes})")
    return axis + num_axes if axis < 0 else axis


def _count(shape: Shape, start: int = 0, end: int | None = None) -> int:
    return math.prod(shape[start:end])


def _fmt(shape: Shape) -> str:
    return "(" + ",".join(map(str, shape)) + ")"


def _expect_bottoms(bottoms: list[Shape], low: int, high: float | None = None) -> None:
    high = low if high is None else high
    if not low <= len(bottoms) <= high:
        wanted = str(low) if low == high else f"{low} or more" if high == math.inf else f"{low} to {high}"
        raise RuleError(f"takes {wanted} bottom(s), got {len(bottoms)}")


def _same_shapes(bottoms: list[Shape]) -> Shape:
    if any(shape != bottoms[0] for shape in bottoms):
        raise RuleError("all bottoms must have the same shape, got " + ", ".join(map(_fmt, bottoms)))
    return bottoms[0]


def _first_dims_match(bottoms: list[Shape]) -> None:
    """Caffe's LossLayer check: predictions and labels share their first axis."""
    if not bottoms[0] or not bottoms[1] or bottoms[0][0] != bottoms[1][0]:
        raise RuleError(f"the two bottoms must share their first axis (batch size), got "
                        f"{_fmt(bottoms[0])} and {_fmt(bottoms[1])}")


def _up_to(tops: list[Shape], layer: Layer) -> list[Shape]:
    """Tops for a layer whose trailing tops are optional: as many as the prototxt lists."""
    return tops[:len(layer.top)] if len(layer.top) <= len(tops) else tops


# ----------------------------------------------------------------------------------------------
# Per-type rules: (layer, bottom shapes) -> top shapes

_Rule = Callable[[Layer, list[Shape]], list[Shape]]
_RULES: dict[str, _Rule] = {}


def _rule(*type_names: str) -> Callable[[_Rule], _Rule]:
    def register(fn: _Rule) -> _Rule:
        _RULES.update(dict.fromkeys(type_names, fn))
        return fn

    return register


@_rule("ReLU", "Sigmoid", "TanH", "ELU", "Dropout", "Power", "BatchNorm")
def _elementwise(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1)
    return [bottoms[0]]


@_rule("PReLU")
def _prelu(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1)
    if len(bottoms[0]) < 2:
        raise RuleError(f"needs a bottom with at least 2 axes (channels on axis 1), got {_fmt(bottoms[0])}")
    return [bottoms[0]]


@_rule("LRN")
def _lrn(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1)
    if len(bottoms[0]) != 4:
        raise RuleError(f"needs a 4-axis bottom (N,C,H,W), got {_fmt(bottoms[0])}")
    if layer.lrn_param.local_size % 2 == 0:
        raise RuleError(f"local_size must be odd, got {layer.lrn_param.local_size}")
    return [bottoms[0]]


@_rule("Scale", "Bias")
def _scale_or_bias(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1, 2)
    param = layer.scale_param if layer.type == "Scale" else layer.bias_param
    data = bottoms[0]
    if len(bottoms) == 2:
        factor = bottoms[1]
        if factor:
            axis = canonical_axis(param.axis, len(data))
            if data[axis:axis + len(factor)] != factor:
                raise RuleError(f"the second bottom {_fmt(factor)} must equal axes {axis}.. of the "
                                f"first {_fmt(data)}; adjust axis")
        return [data]
    if param.num_axes < -1:
        raise RuleError(f"num_axes must be -1 (to the end) or more, got {param.num_axes}")
    if param.num_axes != 0:
        axis = canonical_axis(param.axis, len(data))
        if param.num_axes != -1 and axis + param.num_axes > len(data):
            raise RuleError(f"axis {param.axis} + num_axes {param.num_axes} runs past the "
                            f"{len(data)} axes of {_fmt(data)}")
    return [data]


@_rule("Convolution", "Deconvolution")
def _convolution(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1, math.inf)
    param = layer.convolution_param
    data = _same_shapes(bottoms)
    axis = canonical_axis(param.axis, len(data))
    window = conv_window(param, len(data) - axis - 1)
    if param.num_output == 0:
        raise RuleError("num_output is not set: give convolution_param { num_output: N }")
    channels, group = data[axis], param.group
    if group == 0 or channels % group or param.num_output % group:
        raise RuleError(f"group {group} must divide both the {channels} input channels and "
                        f"num_output {param.num_output}")
    sizes = []
    for size, extent, stride, pad in zip(data[axis + 1:], window.extent, window.stride, window.pad,
                                         strict=True):
        if layer.type == "Convolution":
            span = size + 2 * pad - extent
            out = span // stride + 1 if span >= 0 else 0
        else:
            out = stride * (size - 1) + extent - 2 * pad
        if out <= 0:
            raise RuleError(f"an input of size {size} gives no output with kernel extent {extent}, "
                            f"stride {stride}, pad {pad}; use a larger input or more padding")
        sizes.append(out)
    return [(*data[:axis], param.num_output, *sizes)] * len(bottoms)


def _pooled_size(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    span = size + 2 * pad - kernel
    return (-(-span // stride) if ceil else span // stride) + 1


@_rule("Pooling")
def _pooling(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1)
    param, data = layer.pooling_param, bottoms[0]
    if len(data) != 4:
        raise RuleError(f"needs a 4-axis bottom (N,C,H,W), got {_fmt(data)}")
    max_tops = 2 if param.pool == caffe_pb2.PoolingParameter.MAX else 1
    if param.global_pooling:
        if any(param.HasField(f) for f in ("kernel_size", "kernel_h", "kernel_w")):
            raise RuleError("global_pooling takes its kernel from the input: remove kernel_size")
        if any(_pool_pair(param, "pad", 0)) or _pool_pair(param, "stride", 1) != (1, 1):
            raise RuleError("global_pooling needs pad 0 and stride 1")
        return _up_to([(*data[:2], 1, 1)] * max_tops, layer)
    window = pool_window(param)
    padded = any(window.pad)
    if padded and param.pool not in (caffe_pb2.PoolingParameter.MAX, caffe_pb2.PoolingParameter.AVE):
        raise RuleError("padding is only implemented for MAX and AVE pooling")
    if any(p >= k for p, k in zip(window.pad, window.kernel, strict=True)):
        raise RuleError(f"pad {list(window.pad)} must be smaller than kernel {list(window.kernel)}")
    ceil = param.round_mode == caffe_pb2.PoolingParameter.CEIL
    sizes = []
    for size, kernel, stride, pad in zip(data[2:], window.kernel, window.stride, window.pad, strict=True):
        out = _pooled_size(size, kernel, stride, pad, ceil)
        if padded and (out - 1) * stride >= size + pad:
            out -= 1  # Caffe's clip: the last window must start inside the image or its left pad
        if out <= 0:
            raise RuleError(f"an input of size {size} gives no output with kernel {kernel}, "
                            f"stride {stride}, pad {pad}")
        sizes.append(out)
    return _up_to([data[:2] + tuple(sizes)] * max_tops, layer)


@_rule("InnerProduct")
def _inner_product(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1)
    param = layer.inner_product_param
    axis = canonical_axis(param.axis, len(bottoms[0]))
    if param.num_output == 0:
        raise RuleError("num_output is not set: give inner_product_param { num_output: N }")
    return [(*bottoms[0][:axis], param.num_output)]


@_rule("Crop")
def _crop(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 2)
    data, reference = bottoms
    if len(data) != len(reference):
        raise RuleError(f"both bottoms need the same number of axes, got {_fmt(data)} and {_fmt(reference)}")
    start = canonical_axis(layer.crop_param.axis, len(data))
    offsets = crop_offsets(layer.crop_param, len(data) - start)
    for axis, offset in zip(range(start, len(data)), offsets, strict=True):
        if data[axis] - offset < reference[axis]:
            raise RuleError(f"cannot crop axis {axis} of {_fmt(data)} at offset {offset} to the "
                            f"reference size {reference[axis]} of {_fmt(reference)}; the reference "
                            "is larger: lower the offset or crop a larger blob")
    return [data[:start] + reference[start:]]


def crop_offsets(param: caffe_pb2.CropParameter, num_cropped: int) -> tuple[int, ...]:
    """The offset for each cropped axis: none given -> 0, one -> every axis, else one per axis."""
    given = list(param.offset)
    if len(given) > 1 and len(given) != num_cropped:
        raise RuleError(f"offset has {len(given)} values for {num_cropped} cropped axes; "
                        f"give 1 or {num_cropped}")
    return _per_axis(given, 0, num_cropped, "offset")


def _concat_or_slice_axis(param, legacy: str, shape: Shape) -> int:
    if param.HasField(legacy) and param.HasField("axis"):
        raise RuleError(f"give either axis or {legacy} (deprecated), not both")
    if param.HasField(legacy):
        if getattr(param, legacy) >= len(shape):
            raise RuleError(f"{legacy} {getattr(param, legacy)} is out of range for {_fmt(shape)}")
        return getattr(param, legacy)
    return canonical_axis(param.axis, len(shape))


@_rule("Concat")
def _concat(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1, math.inf)
    first = bottoms[0]
    axis = _concat_or_slice_axis(layer.concat_param, "concat_dim", first)
    for shape in bottoms[1:]:
        if len(shape) != len(first) or shape[:axis] + shape[axis + 1:] != first[:axis] + first[axis + 1:]:
            raise RuleError(f"bottoms may differ only on axis {axis}, got {_fmt(first)} and {_fmt(shape)}")
    return [(*first[:axis], sum(shape[axis] for shape in bottoms), *first[axis + 1:])]


@_rule("Slice")
def _slice(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1)
    data, parts = bottoms[0], len(layer.top)
    axis = _concat_or_slice_axis(layer.slice_param, "slice_dim", data)
    size, points = data[axis], list(layer.slice_param.slice_point)
    if points:
        if len(points) != parts - 1:
            raise RuleError(f"{len(points)} slice_point value(s) for {parts} tops; give {parts - 1}")
        bounds = [0, *points, size]
        if any(a >= b for a, b in itertools.pairwise(bounds)):
            raise RuleError(f"slice_point {points} must increase strictly inside (0, {size})")
        sizes = [b - a for a, b in itertools.pairwise(bounds)]
    else:
        if parts == 0 or size % parts:
            raise RuleError(f"axis {axis} of size {size} does not split evenly into {parts} tops; "
                            "give slice_point")
        sizes = [size // parts] * parts
    return [(*data[:axis], piece, *data[axis + 1:]) for piece in sizes]


@_rule("Eltwise")
def _eltwise(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 2, math.inf)
    param = layer.eltwise_param
    if param.coeff:
        if param.operation != caffe_pb2.EltwiseParameter.SUM:
            raise RuleError("coeff is only allowed with operation SUM")
        if len(param.coeff) != len(bottoms):
            raise RuleError(f"{len(param.coeff)} coeff value(s) for {len(bottoms)} bottoms; "
                            "give one per bottom")
    return [_same_shapes(bottoms)]


@_rule("Flatten")
def _flatten(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1)
    data = bottoms[0]
    start = canonical_axis(layer.flatten_param.axis, len(data))
    end = canonical_axis(layer.flatten_param.end_axis, len(data))
    if end < start:
        raise RuleError(f"end_axis {layer.flatten_param.end_axis} comes before "
                        f"axis {layer.flatten_param.axis}")
    return [(*data[:start], _count(data, start, end + 1), *data[end + 1:])]


@_rule("Reshape")
def _reshape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1)
    param, data = layer.reshape_param, bottoms[0]
    start = param.axis if param.axis >= 0 else len(data) + param.axis + 1
    if not 0 <= start <= len(data):
        raise RuleError(f"axis {param.axis} is out of range for {_fmt(data)}")
    if param.num_axes < -1:
        raise RuleError(f"num_axes must be -1 (to the end) or more, got {param.num_axes}")
    end = len(data) if param.num_axes == -1 else start + param.num_axes
    if end > len(data):
        raise RuleError(f"axis {param.axis} + num_axes {param.num_axes} runs past the axes of {_fmt(data)}")
    dims = list(param.shape.dim)
    if dims.count(-1) > 1:
        raise RuleError("at most one dim may be -1 (inferred)")
    new = []
    for i, dim in enumerate(dims):
        if dim == 0:
            if start + i >= len(data):
                raise RuleError(f"dim {i} is 0 (copy) but the bottom {_fmt(data)} has no axis {start + i}")
            new.append(data[start + i])
        elif dim < -1:
            raise RuleError(f"dim {dim} is invalid; use a positive size, 0 (copy) or -1 (infer)")
        else:
            new.append(dim)
    replaced, known = _count(data, start, end), math.prod(d for d in new if d != -1)
    if -1 in new:
        if known == 0 or replaced % known:
            raise RuleError(f"cannot infer the -1 dim: {replaced} elements do not divide by {known}")
        new[new.index(-1)] = replaced // known
    elif known != replaced:
        raise RuleError(f"shape {dims} holds {known} elements where the bottom {_fmt(data)} has "
                        f"{replaced}; the counts must be equal")
    return [data[:start] + tuple(new) + data[end:]]


@_rule("Split")
def _split(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1)
    return [bottoms[0]] * len(layer.top)


@_rule("Silence")
def _silence(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1, math.inf)
    return []


@_rule("Softmax")
def _softmax(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1)
    canonical_axis(layer.softmax_param.axis, len(bottoms[0]))
    return [bottoms[0]]


@_rule("ArgMax")
def _argmax(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1)
    param, data = layer.argmax_param, bottoms[0]
    if param.HasField("axis"):
        axis = canonical_axis(param.axis, len(data))
        if param.top_k > data[axis]:
            raise RuleError(f"top_k {param.top_k} exceeds the {data[axis]} values on axis {axis}")
        return [(*data[:axis], param.top_k, *data[axis + 1:])]
    if param.top_k > _count(data, 1):
        raise RuleError(f"top_k {param.top_k} exceeds the {_count(data, 1)} values per item")
    shape = [1] * max(3, len(data))
    shape[0], shape[1], shape[2] = data[0], 2 if param.out_max_val else 1, param.top_k
    return [tuple(shape)]


def _check_labels(scores: Shape, labels: Shape, axis_param: int) -> int:
    """Caffe's outer·inner label count rule; returns the canonical class axis."""
    axis = canonical_axis(axis_param, len(scores))
    positions = _count(scores, 0, axis) * _count(scores, axis + 1)
    if _count(labels) != positions:
        raise RuleError(f"the labels {_fmt(labels)} hold {_count(labels)} values but the scores "
                        f"{_fmt(scores)} have {positions} positions (all axes but the class axis {axis}); "
                        "give one label per position")
    return axis


@_rule("Accuracy")
def _accuracy(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 2)
    scores = bottoms[0]
    axis = _check_labels(scores, bottoms[1], layer.accuracy_param.axis)
    if layer.accuracy_param.top_k > scores[axis]:
        raise RuleError(f"top_k {layer.accuracy_param.top_k} exceeds the {scores[axis]} classes")
    return _up_to([(), (scores[axis],)], layer)


@_rule("SoftmaxWithLoss")
def _softmax_loss(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 2)
    _first_dims_match(bottoms)
    _check_labels(bottoms[0], bottoms[1], layer.softmax_param.axis)
    return _up_to([(), bottoms[0]], layer)


@_rule("EuclideanLoss")
def _euclidean_loss(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 2)
    _first_dims_match(bottoms)
    if _count(bottoms[0], 1) != _count(bottoms[1], 1):
        raise RuleError(f"both bottoms need the same number of values per item, got "
                        f"{_fmt(bottoms[0])} and {_fmt(bottoms[1])}")
    return _up_to([()], layer)


@_rule("SigmoidCrossEntropyLoss")
def _sigmoid_cross_entropy_loss(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 2)
    _first_dims_match(bottoms)
    if _count(bottoms[0]) != _count(bottoms[1]):
        raise RuleError(f"logits {_fmt(bottoms[0])} and targets {_fmt(bottoms[1])} need the same count")
    return _up_to([()], layer)


def layer_tops(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """The top shapes of one non-source layer from its bottom shapes (RuleError if it breaks a rule)."""
    return _RULES[layer.type](layer, bottoms)


# ----------------------------------------------------------------------------------------------
# The BVLC types added with the golden conformance set (issue 12), kept together for the per-type
# record refactoring.


def _positive_base(base: float, field: str) -> None:
    if not (base > 0 or base == -1):
        raise RuleError(f"{field} must be positive, or -1 for e; got {base}")


@_rule("AbsVal", "BNLL", "Threshold", "Clip", "Swish", "Exp", "Log", "MVN")
def _pointwise_added(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1)
    if layer.type == "Exp":
        _positive_base(layer.exp_param.base, "exp_param.base")
    elif layer.type == "Log":
        _positive_base(layer.log_param.base, "log_param.base")
    elif layer.type == "Clip" and layer.clip_param.min > layer.clip_param.max:
        raise RuleError(f"clip_param.min {layer.clip_param.min} is above max {layer.clip_param.max}")
    return [bottoms[0]]


@_rule("Tile")
def _tile(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1)
    data, tiles = bottoms[0], layer.tile_param.tiles
    if tiles < 1:
        raise RuleError(f"tiles must be at least 1, got {tiles}: give tile_param {{ tiles: N }}")
    axis = canonical_axis(layer.tile_param.axis, len(data))
    return [(*data[:axis], data[axis] * tiles, *data[axis + 1:])]


@_rule("Reduction")
def _reduction(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1)
    data = bottoms[0]
    return [data[:canonical_axis(layer.reduction_param.axis, len(data))]]


def spp_bins(pyramid_height: int) -> list[int]:
    """Bins per side of each SPP level: 1, 2, 4, ..."""
    return [2 ** level for level in range(pyramid_height)]


@_rule("SPP")
def _spp(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1)
    data, height = bottoms[0], layer.spp_param.pyramid_height
    if len(data) != 4:
        raise RuleError(f"needs a 4-axis bottom (N,C,H,W), got {_fmt(data)}")
    if height < 1:
        raise RuleError("pyramid_height must be at least 1: give spp_param { pyramid_height: L }")
    if layer.spp_param.pool == caffe_pb2.SPPParameter.STOCHASTIC:
        raise RuleError("STOCHASTIC pooling is not supported; use pool: MAX or AVE")
    if height == 1:
        return [(*data[:2], 1, 1)]
    return [(data[0], data[1] * sum(bins * bins for bins in spp_bins(height)))]


@_rule("Embed")
def _embed(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1)
    param = layer.embed_param
    if param.num_output == 0 or param.input_dim == 0:
        raise RuleError("give embed_param { num_output: N input_dim: D } (both positive)")
    return [(*bottoms[0], param.num_output)]


@_rule("Filter")
def _filter(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """Tops as large as the bottoms: the selected count is known only when the selector is read."""
    _expect_bottoms(bottoms, 2, math.inf)
    *data, selector = bottoms
    if not selector or any(dim != 1 for dim in selector[1:]):
        raise RuleError(f"the selector (last bottom) {_fmt(selector)} must be (N) or (N,1,...)")
    for shape in data:
        if not shape or shape[0] != selector[0]:
            raise RuleError(f"bottom {_fmt(shape)} must have the selector's {selector[0]} items on axis 0")
    return data


@_rule("BatchReindex")
def _batch_reindex(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 2)
    data, indices = bottoms
    if len(indices) != 1 or not data:
        raise RuleError(f"the indices (second bottom) must be 1-axis, got {_fmt(indices)}")
    return [(indices[0], *data[1:])]


@_rule("Parameter")
def _parameter(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 0)
    return [tuple(layer.parameter_param.shape.dim)]


@_rule("DummyData")
def _dummy_data(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 0)
    param, tops = layer.dummy_data_param, len(layer.top)
    if param.shape:
        shapes = [tuple(blob.dim) for blob in param.shape]
    else:
        legacy = [list(getattr(param, field)) for field in ("num", "channels", "height", "width")]
        if any(len(values) not in (1, tops) for values in legacy):
            raise RuleError("give dummy_data_param { shape { dim: ... } } per top "
                            "(or num/channels/height/width, each once or once per top)")
        shapes = [tuple(values[index if len(values) > 1 else 0] for values in legacy)
                  for index in range(tops)]
    if len(shapes) not in (1, tops):
        raise RuleError(f"{len(shapes)} shapes for {tops} tops; give 1 or one per top")
    if len(param.data_filler) not in (0, 1, tops):
        raise RuleError(f"{len(param.data_filler)} data_filler for {tops} tops; give 0, 1 or one per top")
    return [shapes[index if len(shapes) > 1 else 0] for index in range(tops)]


@_rule("Im2col")
def _im2col(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1)
    param, data = layer.convolution_param, bottoms[0]
    axis = canonical_axis(param.axis, len(data))
    if len(data) - axis - 1 != 2:
        raise RuleError(f"digitslite's Im2col works on 2 spatial axes; {_fmt(data)} from axis {axis} has "
                        f"{len(data) - axis - 1}")
    window = conv_window(param, 2)
    sizes = []
    for size, extent, stride, pad in zip(data[axis + 1:], window.extent, window.stride, window.pad,
                                         strict=True):
        span = size + 2 * pad - extent
        if span < 0:
            raise RuleError(f"an input of size {size} gives no column with kernel extent {extent}, pad {pad}")
        sizes.append(span // stride + 1)
    return [(*data[:axis], data[axis] * math.prod(window.kernel), *sizes)]


@_rule("InfogainLoss")
def _infogain_loss(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 2, 3)
    scores = bottoms[0]
    axis = _check_labels(scores, bottoms[1], layer.infogain_loss_param.axis)
    classes = scores[axis]
    if len(bottoms) == 3 and _count(bottoms[2]) != classes * classes:
        raise RuleError(f"the infogain matrix {_fmt(bottoms[2])} must hold {classes}x{classes} values")
    if len(bottoms) == 2 and not layer.infogain_loss_param.source:
        raise RuleError("give the infogain matrix as a third bottom or as infogain_loss_param { source: "
                        "\"H.binaryproto\" }")
    return _up_to([(), scores], layer)


@_rule("MultinomialLogisticLoss")
def _multinomial_logistic_loss(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 2)
    _first_dims_match(bottoms)
    if _count(bottoms[1]) != bottoms[1][0]:
        raise RuleError(f"the labels {_fmt(bottoms[1])} must hold one value per item (N,1,1,1)")
    return _up_to([()], layer)


@_rule("HingeLoss")
def _hinge_loss(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 2)
    _first_dims_match(bottoms)
    if _count(bottoms[1]) != bottoms[1][0]:
        raise RuleError(f"the labels {_fmt(bottoms[1])} must hold one value per item")
    return _up_to([()], layer)


@_rule("ContrastiveLoss")
def _contrastive_loss(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 3)
    first, second, similar = bottoms
    if first != second or len(first) < 2 or any(dim != 1 for dim in first[2:]):
        raise RuleError(f"the two feature bottoms must be equal (N,C,1,1), got {_fmt(first)} and "
                        f"{_fmt(second)}")
    if _count(similar) != first[0] or similar[0] != first[0]:
        raise RuleError(f"the similarity bottom {_fmt(similar)} must hold one value per item (N,1,1,1)")
    return _up_to([()], layer)


@_rule("RNN", "LSTM")
def _recurrent(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 2, 3)
    param, data, cont = layer.recurrent_param, bottoms[0], bottoms[1]
    if param.expose_hidden:
        raise RuleError("expose_hidden is not supported by digitslite; remove it (the hidden state "
                        "then starts at 0 in every forward pass)")
    if param.num_output == 0:
        raise RuleError("num_output is not set: give recurrent_param { num_output: N }")
    if len(data) < 3 or cont != data[:2]:
        raise RuleError(f"the input must be (T,N,...) with the sequence continuation (T,N), got "
                        f"{_fmt(data)} and {_fmt(cont)}")
    if len(bottoms) == 3 and (not bottoms[2] or bottoms[2][0] != data[1]):
        raise RuleError(f"the static input {_fmt(bottoms[2])} must have the {data[1]} streams on axis 0")
    return [(*data[:2], param.num_output)]


@_rule("LSTMUnit")
def _lstm_unit(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 3)
    cell, gates, cont = bottoms
    if len(cell) != 3 or cell[0] != 1 or gates != (1, cell[1], 4 * cell[2]) or cont != cell[:2]:
        raise RuleError(f"needs the cell (1,N,H), the gate inputs (1,N,4H) and cont (1,N); got "
                        f"{_fmt(cell)}, {_fmt(gates)} and {_fmt(cont)}")
    return [cell, cell]


def permute_order(param: caffe_pb2.PermuteParameter, num_axes: int) -> tuple[int, ...]:
    """SSD's axis order: the listed axes, then every other axis in its order."""
    listed = list(param.order)
    if len(set(listed)) != len(listed) or any(axis >= num_axes for axis in listed):
        raise RuleError(f"order {listed} must name distinct axes below {num_axes}")
    return (*listed, *(axis for axis in range(num_axes) if axis not in listed))


@_rule("Permute")
def _permute(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 1)
    data = bottoms[0]
    return [tuple(data[axis] for axis in permute_order(layer.permute_param, len(data)))]


def upsample_size(param: caffe_pb2.UpsampleParameter, height: int, width: int) -> tuple[int, int]:
    """SegNet's output size: upsample_h x upsample_w, else the input times scale_h/scale_w (or
    scale), less one on an axis whose pad_out is set (scale 2 only)."""
    if param.HasField("upsample_h") or param.HasField("upsample_w"):
        if not (param.HasField("upsample_h") and param.HasField("upsample_w")):
            raise RuleError("give both upsample_h and upsample_w")
        if param.upsample_h <= 1 or param.upsample_w <= 1:
            raise RuleError("upsample_h and upsample_w must be above 1")
        return param.upsample_h, param.upsample_w
    if param.HasField("scale_h") != param.HasField("scale_w") or (
            param.HasField("scale_h") and param.HasField("scale")):
        raise RuleError("give either scale, or both scale_h and scale_w")
    scales = (param.scale_h, param.scale_w) if param.HasField("scale_h") else (param.scale,) * 2
    if min(scales) <= 1:
        raise RuleError(f"the scale must be above 1, got {list(scales)}")
    pads = (param.pad_out_h, param.pad_out_w)
    if any(pad and scale != 2 for pad, scale in zip(pads, scales, strict=True)):
        raise RuleError("pad_out_h / pad_out_w only work with scale 2")
    return height * scales[0] - int(pads[0]), width * scales[1] - int(pads[1])


@_rule("Upsample")
def _upsample(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _expect_bottoms(bottoms, 2)
    data, mask = bottoms
    if len(data) != 4 or mask != data:
        raise RuleError(f"needs an N,C,H,W bottom and a pooling mask of the same shape (the second top "
                        f"of a MAX Pooling), got {_fmt(data)} and {_fmt(mask)}")
    return [(*data[:2], *upsample_size(layer.upsample_param, *data[2:]))]


# ----------------------------------------------------------------------------------------------
# Net inputs

_DATA_SOURCES = frozenset({"Data", "ImageData", "HDF5Data", "Python"})

# Types real nets use that digitslite refuses, with the reason and what to use instead.
REFUSED_TYPES: dict[str, str] = {
    "MemoryData": "it is fed from C++/pycaffe code (MemoryDataLayer::Reset); use an Input layer and "
                  "feed the blobs, or a digitslite dataset with a Data layer",
    "WindowData": "R-CNN's window files are not a digitslite dataset format; crop the windows into an "
                  "image dataset and use a Data layer",
    "HDF5Output": "a net writes no files in digitslite; read the blobs from the inference results instead",
    "BN": "it is SegNet's fork layer (caffe-segnet); replace it with BatchNorm followed by Scale "
          "(bias_term: true)",
    "L1Loss": "it is NVIDIA Caffe's fork layer; use EuclideanLoss, or run the net in NVIDIA Caffe",
    "Axpy": "it is a waifu2x/SENet fork layer; rewrite it as Scale (two bottoms) plus Eltwise SUM",
    "CropCenter": "it is waifu2x's fork layer; use Crop with offsets for the centre",
}
SUPPORTED_TYPES: frozenset[str] = frozenset(_RULES) | _DATA_SOURCES | {"Input"}


def is_source(layer: Layer) -> bool:
    """Whether the layer feeds the net from outside (Input, or a data layer without bottoms)."""
    return layer.type == "Input" or (layer.type in _DATA_SOURCES and not layer.bottom)


def input_tops(net: caffe_pb2.NetParameter) -> list[str]:
    """The tops of the net's Input and data layers, in order: the blobs input_shapes can name."""
    tops = (top for layer in net.layer if is_source(layer) for top in layer.top)
    return list(dict.fromkeys(tops))


def _input_layer_tops(layer: Layer, given: Mapping[str, Shape]) -> list[Shape]:
    declared = [tuple(blob.dim) for blob in layer.input_param.shape]
    if len(declared) not in (0, 1, len(layer.top)):
        raise RuleError(f"input_param has {len(declared)} shapes for {len(layer.top)} tops; "
                        "give 1 or one per top")
    tops = []
    for index, top in enumerate(layer.top):
        if top in given:
            tops.append(given[top])
        elif declared:
            tops.append(declared[index if len(declared) > 1 else 0])
        else:
            raise RuleError(f"the shape of '{top}' is not declared: give input_param "
                            f"{{ shape {{ dim: ... }} }} or pass it (--input-shape {top}=N,C,H,W "
                            "on the command line)")
    return tops


def _as_read(layer: Layer, dims: Shape) -> Shape:
    """A record shape given by the caller, completed and transformed as the data layer does."""
    if layer.type == "Data":
        batch = layer.data_param.batch_size
    elif layer.type == "ImageData":
        batch = layer.image_data_param.batch_size
    elif layer.type == "HDF5Data":
        batch = layer.hdf5_data_param.batch_size
    else:
        batch = 1
    if len(dims) == 3:
        dims = (batch or 1, *dims)
    if len(dims) != 4:
        return dims
    height, width = dims[2:]
    if layer.type == "ImageData" and layer.image_data_param.new_height and layer.image_data_param.new_width:
        height, width = layer.image_data_param.new_height, layer.image_data_param.new_width
    crop = layer.transform_param.crop_size
    if crop:
        if crop > height or crop > width:
            raise RuleError(f"crop_size {crop} is larger than the {height}x{width} records; "
                            "give the dataset's real image size or a smaller crop_size")
        height = width = crop
    return (*dims[:2], height, width)


def _data_layer_tops(layer: Layer, given: Mapping[str, Shape], first: Shape | None) -> list[Shape]:
    if layer.type == "HDF5Data" and not all(top in given for top in layer.top):
        return hdf5_source.top_shapes(layer)   # the files say; Caffe reads them at set-up too
    tops: list[Shape] = []
    for index, top in enumerate(layer.top):
        if top in given:
            tops.append(_as_read(layer, given[top]))
        elif index == 1 and layer.type in ("Data", "ImageData"):
            tops.append(tops[0][:1])
        elif first is not None or tops:
            base = first if first is not None else tops[0]
            tops.append((base[0], 1, *base[2:]))
        else:
            raise RuleError(f"digitslite cannot know the shape of '{top}' before reading the dataset: "
                            f"pass it (--input-shape {top}=N,C,H,W or C,H,W on the command line)")
    return tops


# ----------------------------------------------------------------------------------------------
# Inference over a net


@dataclass(frozen=True)
class LayerShapes:
    """The bottom and top shapes of one layer, as Caffe's SetUp would see them."""

    name: str
    type: str
    bottoms: list[Shape]
    tops: list[Shape]


def _where(source_map: SourceMap | None, layer: Layer) -> str:
    return f"{source_map.where(layer.name)}: " if source_map is not None else ""


def _normalise(net: caffe_pb2.NetParameter,
               input_shapes: Mapping[str, Sequence[int]] | None) -> dict[str, Shape]:
    given = {name: tuple(int(d) for d in dims) for name, dims in (input_shapes or {}).items()}
    known = input_tops(net)
    for name, dims in given.items():
        if name not in known:
            raise ShapeError(f"an input shape is given for '{name}', which no Input or data layer of net "
                             f"'{net.name}' produces; its inputs are: {', '.join(known) or 'none'}")
        if not dims or any(d <= 0 for d in dims):
            raise ShapeError(f"the input shape {list(dims)} for '{name}' must be positive sizes, "
                             "e.g. 1,3,500,500")
    return given


def infer_shapes(net: caffe_pb2.NetParameter, input_shapes: Mapping[str, Sequence[int]] | None = None,
                 source_map: SourceMap | None = None) -> list[LayerShapes]:
    """Bottom and top shapes of every layer of a filtered net, one entry per layer in order.

    Raises ShapeError at the first layer of an unsupported type (checked before any shape, since
    no input shape can fix it) or the first layer that breaks Caffe's rules.
    """
    for layer in net.layer:
        if layer.type in REFUSED_TYPES:
            raise ShapeError(f"{_where(source_map, layer)}layer '{layer.name}' has type '{layer.type}', "
                             f"which digitslite does not run: {REFUSED_TYPES[layer.type]}")
        if layer.type not in SUPPORTED_TYPES:
            supported = ", ".join(sorted(SUPPORTED_TYPES))
            raise ShapeError(f"{_where(source_map, layer)}layer '{layer.name}' has type '{layer.type}', "
                             f"which digitslite does not support (supported: {supported})")
    given = _normalise(net, input_shapes)
    shapes: dict[str, Shape] = {}
    first_data: Shape | None = None
    result = []
    for layer in net.layer:
        try:
            missing = [name for name in layer.bottom if name not in shapes]
            if missing:
                raise RuleError(f"bottom '{missing[0]}' is not produced by any earlier layer; "
                                "produce it first or fix the name")
            bottoms = [shapes[name] for name in layer.bottom]
            if layer.type == "Input":
                tops = _input_layer_tops(layer, given)
            elif is_source(layer):
                tops = _data_layer_tops(layer, given, first_data)
            elif layer.type == "Python":
                raise RuleError("digitslite runs a Python layer only as a data source (no bottoms); "
                                "replace this one with built-in layers")
            else:
                tops = _RULES[layer.type](layer, bottoms)
            if len(tops) != len(layer.top):
                raise RuleError(f"lists {len(layer.top)} top(s) but makes {len(tops)}; list {len(tops)}")
        except RuleError as exc:
            where = _where(source_map, layer)
            raise ShapeError(f"{where}layer '{layer.name}' ({layer.type}): {exc}") from None
        if is_source(layer) and first_data is None and tops:
            first_data = tops[0]
        shapes.update(zip(layer.top, tops, strict=True))
        result.append(LayerShapes(name=layer.name, type=layer.type, bottoms=bottoms, tops=tops))
    return result


def blob_shapes(net: caffe_pb2.NetParameter, input_shapes: Mapping[str, Sequence[int]] | None = None,
                source_map: SourceMap | None = None) -> dict[str, Shape]:
    """The final shape of every top of the net, in order of first appearance."""
    shapes: dict[str, Shape] = {}
    for layer, entry in zip(net.layer, infer_shapes(net, input_shapes, source_map), strict=True):
        shapes.update(zip(layer.top, entry.tops, strict=True))
    return shapes
