"""Caffe's parameter forms resolved to plain numbers: sliding windows, axes, crop offsets, output
sizes (caffe-spec §2.6). Shape inference, the coordinate map, inference footprints and the engine
layers all read these, so a window is resolved the same way everywhere."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from digitslite.caffe import caffe_pb2

Shape = tuple[int, ...]


class RuleError(Exception):
    """A layer breaks one of Caffe's rules; the message says what and how to fix it, and the
    caller (shape inference, coord map, engine) adds which layer and where."""


@dataclass(frozen=True)
class Window:
    """Kernel, stride, pad and dilation of a convolution or pooling, one entry per spatial axis;
    the spatial axes follow `channel_axis` (as the prototxt gives it, possibly negative)."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    dilation: tuple[int, ...]
    channel_axis: int = 1

    @property
    def extent(self) -> tuple[int, ...]:
        """The span of the dilated kernel: dilation·(kernel − 1) + 1."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation, strict=True))


def canonical_axis(axis: int, num_axes: int) -> int:
    """Caffe's CanonicalAxisIndex: a negative axis counts from the end."""
    if not -num_axes <= axis < num_axes:
        raise RuleError(f"axis {axis} is out of range for a {num_axes}-axis blob; "
                        f"use an axis in [{-num_axes}, {num_axes})")
    return axis + num_axes if axis < 0 else axis


def per_axis(values: Sequence[int], default: int, count: int, field: str) -> tuple[int, ...]:
    """A repeated field spread over `count` axes: none -> the default, one -> every axis."""
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
    return per_axis(values, default or 0, count, repeated)


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
                    dilation=per_axis(param.dilation, 1, num_spatial, "dilation"),
                    channel_axis=param.axis)
    for field in ("kernel", "stride", "dilation"):
        if 0 in getattr(window, field):
            raise RuleError(f"{field} must be positive, got {list(getattr(window, field))}")
    return window


def pool_pair(param: caffe_pb2.PoolingParameter, base: str, default: int | None) -> tuple[int, int]:
    """A pooling field given as the scalar or as `base`_h/`base`_w, for both spatial axes."""
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
    window = Window(kernel=pool_pair(param, "kernel", None), stride=pool_pair(param, "stride", 1),
                    pad=pool_pair(param, "pad", 0), dilation=(1, 1))
    if 0 in window.kernel or 0 in window.stride:
        raise RuleError(f"kernel and stride must be positive, got kernel {list(window.kernel)} "
                        f"stride {list(window.stride)}")
    return window


def conv_output_size(size: int, window: Window, axis: int, transposed: bool) -> int:
    """Caffe's output size along spatial axis `axis` (0 or less: the input is too small)."""
    extent, stride, pad = window.extent[axis], window.stride[axis], window.pad[axis]
    if transposed:
        return stride * (size - 1) + extent - 2 * pad
    span = size + 2 * pad - extent
    return span // stride + 1 if span >= 0 else 0


def pooled_size(size: int, kernel: int, stride: int, pad: int, ceil: bool, clip: bool) -> int:
    """Caffe's number of pooling windows along one axis. `clip` (the layer pads on some axis)
    drops a last window that would start in the right pad, as Caffe does only then."""
    span = size + 2 * pad - kernel
    pooled = (-(-span // stride) if ceil else span // stride) + 1
    if clip and (pooled - 1) * stride >= size + pad:
        pooled -= 1
    return pooled


def crop_offsets(param: caffe_pb2.CropParameter, num_cropped: int) -> tuple[int, ...]:
    """The offset for each cropped axis: none given -> 0, one -> every axis, else one per axis."""
    given = list(param.offset)
    if len(given) > 1 and len(given) != num_cropped:
        raise RuleError(f"offset has {len(given)} values for {num_cropped} cropped axes; "
                        f"give 1 or {num_cropped}")
    return per_axis(given, 0, num_cropped, "offset")
