"""Convolution and Deconvolution over the window and weight layout their record resolves."""
import torch
import torch.nn.functional as F

from digitslite.caffe import caffe_pb2
from digitslite.caffe.geometry import canonical_axis, conv_output_size
from digitslite.engine import execution
from digitslite.engine.layers.base import CaffeLayer, Shape, register

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_DECONV = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


class _ConvolutionBase(CaffeLayer):
    """Shared set-up: channel axis, groups and the weight/bias blobs."""

    transposed = False

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        conv = param.convolution_param
        shape = bottom_shapes[0]
        self.axis = canonical_axis(conv.axis, len(shape))
        self.num_spatial = len(shape) - self.axis - 1
        if self.num_spatial > 3:
            raise self.user_error(f"it has {self.num_spatial} spatial axes",
                                  "use at most 3 spatial axes (N-d beyond 3-D is not supported)")
        self.groups = conv.group
        self.weight = self.new_param(self.blob_shapes[0], conv.weight_filler, generator, "weight_filler")
        self.blob_names = ("weight",)
        self.bias = None
        if conv.bias_term:
            self.bias = self.new_param(self.blob_shapes[1], conv.bias_filler, generator, "bias_filler")
            self.blob_names = ("weight", "bias")
        self._packed = None if self.transposed else execution.PackedWeight()

    def _as_batch(self, x: torch.Tensor) -> torch.Tensor:
        """View the bottom as (outer, C, spatial...) with at least one spatial axis for torch's convs."""
        batch = x.reshape(-1, *x.shape[self.axis:])
        return batch.unsqueeze(-1) if self.num_spatial == 0 else batch

    def _torch_weight(self) -> torch.Tensor:
        return self.weight.unsqueeze(-1) if self.num_spatial == 0 else self.weight

    def _options(self) -> dict[str, tuple[int, ...]]:
        window = self.window
        if self.num_spatial == 0:
            return {"stride": (1,), "padding": (0,), "dilation": (1,)}
        return {"stride": window.stride, "padding": window.pad, "dilation": window.dilation}

    def _check_size(self, batch: torch.Tensor) -> None:
        """The record checked the declared shapes; a bottom of another size is checked here."""
        for dim, size in enumerate(batch.shape[2:2 + self.num_spatial]):
            if conv_output_size(size, self.window, dim, self.transposed) <= 0:
                extent, pad = self.window.extent[dim], self.window.pad[dim]
                raise self.user_error(f"the kernel extent {extent} leaves no output for the input size "
                                      f"{size} (pad {pad}) on spatial axis {dim}",
                                      "use a smaller kernel or a larger input")

    def _convolve(self, batch: torch.Tensor, relu: bool) -> torch.Tensor:
        """2-D: the execution chosen for this device (digitslite.engine.execution); else torch's."""
        if self.num_spatial == 2:
            call = execution.ConvCall(self.transposed, self.weight, self.bias, self.groups, **self._options())
            return execution.convolve(call, batch, relu, self._packed)
        function = (_DECONV if self.transposed else _CONV)[max(self.num_spatial, 1)]
        out = function(batch, self._torch_weight(), self.bias, groups=self.groups, **self._options())
        return out.relu_() if relu else out

    def forward(self, *bottoms: torch.Tensor, relu: bool = False) -> tuple[torch.Tensor, ...]:
        """The tops; with `relu` (only while no graph is recorded) each passed through a ReLU, the
        ReLU layer after this one that the net folds in (CaffeNet._fuses_relu)."""
        tops = []
        for bottom in bottoms:
            batch = self._as_batch(bottom)
            self._check_size(batch)
            out = self._convolve(batch, relu)
            if self.num_spatial == 0:
                out = out.squeeze(-1)
            shape = (*bottom.shape[:self.axis], *out.shape[1:])
            # a reshape to the same shape would give a channels_last batch of 1 an odd N stride,
            # on which torch's max pooling runs 18x slower
            tops.append(out if out.shape == shape else out.reshape(shape))
        return tuple(tops)


@register("Convolution")
class Convolution(_ConvolutionBase):
    """Cross-correlation with weight (num_output, C/group, k...), exactly torch's convNd layout."""


@register("Deconvolution")
class Deconvolution(_ConvolutionBase):
    """Transposed convolution; weight (C_in, num_output/group, k...), the reverse of Convolution.

    Output size per axis: stride·(in − 1) + dilation·(kernel − 1) + 1 − 2·pad (no output padding).
    """

    transposed = True


@register("Im2col")
class Im2col(CaffeLayer):
    """The columns a 2-D convolution multiplies: top (N, C·kh·kw, out_h, out_w), channel-major like
    Caffe's im2col (c·kh·kw + i·kw + j); the backward is col2im, a sum over overlapping windows."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.axis = len(bottom_shapes[0]) - 3

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        window = self.window
        batch = bottom.reshape(-1, *bottom.shape[self.axis:])
        columns = F.unfold(batch, window.kernel, window.dilation, window.pad, window.stride)
        sizes = [(size + 2 * pad - extent) // stride + 1 for size, pad, extent, stride
                 in zip(batch.shape[2:], window.pad, window.extent, window.stride, strict=True)]
        return (columns.reshape(*bottom.shape[:self.axis], columns.shape[1], *sizes),)
