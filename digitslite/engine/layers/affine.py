"""Scale and Bias: multiply or add a blob broadcast along axes [axis, axis + its num_axes) of x."""
import torch

from digitslite.caffe import caffe_pb2
from digitslite.caffe.geometry import canonical_axis
from digitslite.caffe.layers.affine import covered_axes
from digitslite.engine.layers.base import CaffeLayer, Shape, filler_or, register


class _Broadcast(CaffeLayer):
    """Where the operand (a learned blob, or bottom 1) lines up with bottom 0; the record checked
    that it fits."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None, axis: int) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        shape = bottom_shapes[0]
        self.operand_shape = bottom_shapes[1] if len(bottom_shapes) == 2 else covered_axes(param, shape)
        self.axis = canonical_axis(axis, len(shape)) if self.operand_shape else 0

    def aligned(self, operand: torch.Tensor, ndim: int) -> torch.Tensor:
        """The operand reshaped so it broadcasts against an ndim-axis bottom at self.axis."""
        trailing = ndim - self.axis - operand.dim()
        return operand.reshape(*operand.shape, *([1] * trailing))


@register("Scale")
class Scale(_Broadcast):
    """y = x·s (+ b with bias_term); s is learned (default filler constant 1) or bottom 1."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        scale = param.scale_param
        super().__init__(param, bottom_shapes, phase, generator, scale.axis)
        names = []
        self.bias_term = scale.bias_term
        if len(bottom_shapes) == 1:
            filler = filler_or(scale.filler, scale.HasField("filler"), type="constant", value=1.0)
            self.scale = self.new_param(self.operand_shape, filler, generator, "filler")
            names.append("scale")
        if scale.bias_term:
            self.bias = self.new_param(self.operand_shape, scale.bias_filler, generator, "bias_filler")
            names.append("bias")
        self.blob_names = tuple(names)

    def forward(self, bottom: torch.Tensor, *operand: torch.Tensor) -> tuple[torch.Tensor]:
        scale = operand[0] if operand else self.scale
        top = bottom * self.aligned(scale, bottom.dim())
        if self.bias_term:
            top = top + self.aligned(self.bias, bottom.dim())
        return (top,)


@register("Bias")
class Bias(_Broadcast):
    """y = x + b; b is learned (default filler constant 0) or bottom 1."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        bias = param.bias_param
        super().__init__(param, bottom_shapes, phase, generator, bias.axis)
        if len(bottom_shapes) == 1:
            self.bias = self.new_param(self.operand_shape, bias.filler, generator, "filler")
            self.blob_names = ("bias",)

    def forward(self, bottom: torch.Tensor, *operand: torch.Tensor) -> tuple[torch.Tensor]:
        bias = operand[0] if operand else self.bias
        return (bottom + self.aligned(bias, bottom.dim()),)
