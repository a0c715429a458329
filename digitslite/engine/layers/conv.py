"""Convolution and Deconvolution with Caffe's parameter forms, weight layouts and output sizes."""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from digitslite.caffe import caffe_pb2
from digitslite.engine import execution
from digitslite.engine.layers.base import CaffeLayer, Shape, register

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_DECONV = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@dataclass(frozen=True)
class Geometry:
    """Per-spatial-dim kernel, stride, pad and dilation, resolved from Caffe's scalar/_h_w/repeated forms."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    dilation: tuple[int, ...]

    def extent(self, dim: int) -> int:
        return self.dilation[dim] * (self.kernel[dim] - 1) + 1


class _ConvolutionBase(CaffeLayer):
    """Shared set-up: channel axis, geometry, groups and the weight/bias blobs."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.require_bottoms(bottom_shapes, 1)
        if any(shape != bottom_shapes[0] for shape in bottom_shapes):
            raise self.user_error(f"its bottoms have different shapes {bottom_shapes}",
                                  "give every bottom of a shared-weight convolution the same shape")
        conv = param.convolution_param
        shape = bottom_shapes[0]
        self.axis = self.canonical_axis(conv.axis, len(shape), "convolution_param.axis")
        self.num_spatial = len(shape) - self.axis - 1
        if self.num_spatial > 3:
            raise self.user_error(f"it has {self.num_spatial} spatial axes",
                                  "use at most 3 spatial axes (N-d beyond 3-D is not supported)")
        self.geometry = self._geometry(conv)
        channels = shape[self.axis]
        self.groups = conv.group
        self.num_output = conv.num_output
        if self.num_output <= 0:
            raise self.user_error("num_output is missing or 0", "set convolution_param.num_output > 0")
        if self.groups <= 0 or channels % self.groups or self.num_output % self.groups:
            raise self.user_error(f"group {self.groups} does not divide both the {channels} input "
                                  f"channels and num_output {self.num_output}",
                                  "choose a group that divides both")
        self.weight = self.new_param(self._weight_shape(channels), conv.weight_filler, generator,
                                     "weight_filler")
        self.blob_names = ("weight",)
        self.bias = None
        if conv.bias_term:
            self.bias = self.new_param((self.num_output,), conv.bias_filler, generator, "bias_filler")
            self.blob_names = ("weight", "bias")

    def _weight_shape(self, channels: int) -> Shape:
        raise NotImplementedError

    def _per_dim(self, values, name: str, default: int) -> tuple[int, ...]:
        if len(values) == 0:
            return (default,) * self.num_spatial
        if len(values) == 1:
            return (values[0],) * self.num_spatial
        if len(values) == self.num_spatial:
            return tuple(values)
        raise self.user_error(f"{name} is given {len(values)} times",
                              f"give it once or once per spatial axis ({self.num_spatial})")

    def _height_width(self, conv, prefix: str, repeated: str) -> tuple[int, ...] | None:
        """The (<prefix>_h, <prefix>_w) pair if either is set (a missing one is 0); else None."""
        h, w = f"{prefix}_h", f"{prefix}_w"
        if not (conv.HasField(h) or conv.HasField(w)):
            return None
        if self.num_spatial != 2:
            raise self.user_error(f"{h}/{w} only apply to 2-D convolution",
                                  f"use the repeated {repeated} field for {self.num_spatial} spatial axes")
        if len(getattr(conv, repeated)):
            raise self.user_error(f"both {repeated} and {h}/{w} are given", "use one form only")
        return (getattr(conv, h), getattr(conv, w))

    def _form(self, conv, prefix: str, repeated: str, default: int) -> tuple[int, ...]:
        pair = self._height_width(conv, prefix, repeated)
        return pair if pair is not None else self._per_dim(getattr(conv, repeated), repeated, default)

    def _geometry(self, conv: caffe_pb2.ConvolutionParameter) -> Geometry:
        kernel = self._form(conv, "kernel", "kernel_size", 0)
        stride = self._form(conv, "stride", "stride", 1)
        pad = self._form(conv, "pad", "pad", 0)
        dilation = self._per_dim(conv.dilation, "dilation", 1)
        if min(kernel, default=1) <= 0:
            raise self.user_error("a kernel dimension is missing or 0",
                                  "set kernel_size (or both kernel_h and kernel_w) > 0")
        if min(stride, default=1) <= 0:
            raise self.user_error("a stride is 0", "set stride (or both stride_h and stride_w) > 0")
        if min(dilation, default=1) <= 0:
            raise self.user_error("a dilation is 0", "set dilation > 0")
        return Geometry(kernel, stride, pad, dilation)

    def _as_batch(self, x: torch.Tensor) -> torch.Tensor:
        """View the bottom as (outer, C, spatial...) with at least one spatial axis for torch's convs."""
        batch = x.reshape(-1, *x.shape[self.axis:])
        return batch.unsqueeze(-1) if self.num_spatial == 0 else batch

    def _torch_weight(self) -> torch.Tensor:
        return self.weight.unsqueeze(-1) if self.num_spatial == 0 else self.weight

    def _options(self) -> dict[str, tuple[int, ...]]:
        geometry = self.geometry
        if self.num_spatial == 0:
            return {"stride": (1,), "padding": (0,), "dilation": (1,)}
        return {"stride": geometry.stride, "padding": geometry.pad, "dilation": geometry.dilation}

    def _convolve(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _run(self, batch: torch.Tensor, transposed: bool) -> torch.Tensor:
        """2-D: the execution chosen for this device (digitslite.engine.execution); else torch's."""
        if self.num_spatial == 2:
            call = execution.ConvCall(transposed, self.weight, self.bias, self.groups, **self._options())
            return execution.convolve(call, batch)
        function = (_DECONV if transposed else _CONV)[max(self.num_spatial, 1)]
        return function(batch, self._torch_weight(), self.bias, groups=self.groups, **self._options())

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:
        tops = []
        for bottom in bottoms:
            out = self._convolve(self._as_batch(bottom))
            if self.num_spatial == 0:
                out = out.squeeze(-1)
            tops.append(out.reshape(*bottom.shape[:self.axis], *out.shape[1:]))
        return tuple(tops)


@register("Convolution")
class Convolution(_ConvolutionBase):
    """Cross-correlation with weight (num_output, C/group, k...), exactly torch's convNd layout."""

    def _weight_shape(self, channels: int) -> Shape:
        return (self.num_output, channels // self.groups, *self.geometry.kernel)

    def _convolve(self, batch: torch.Tensor) -> torch.Tensor:
        for dim, size in enumerate(batch.shape[2:2 + self.num_spatial]):
            if size + 2 * self.geometry.pad[dim] < self.geometry.extent(dim):
                raise self.user_error(f"the kernel extent {self.geometry.extent(dim)} exceeds the padded "
                                      f"input size {size + 2 * self.geometry.pad[dim]} on spatial axis {dim}",
                                      "use a smaller kernel or a larger input")
        return self._run(batch, transposed=False)


@register("Deconvolution")
class Deconvolution(_ConvolutionBase):
    """Transposed convolution; weight (C_in, num_output/group, k...), the reverse of Convolution.

    Output size per axis: stride·(in − 1) + dilation·(kernel − 1) + 1 − 2·pad (no output padding).
    """

    def _weight_shape(self, channels: int) -> Shape:
        return (channels, self.num_output // self.groups, *self.geometry.kernel)

    def _convolve(self, batch: torch.Tensor) -> torch.Tensor:
        geometry = self.geometry
        for dim, size in enumerate(batch.shape[2:2 + self.num_spatial]):
            if geometry.stride[dim] * (size - 1) + geometry.extent(dim) - 2 * geometry.pad[dim] < 1:
                raise self.user_error(f"the output would be empty on spatial axis {dim}",
                                      "reduce pad or enlarge the kernel")
        return self._run(batch, transposed=True)
