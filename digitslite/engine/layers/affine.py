"""Scale and Bias: multiply or add a blob broadcast along axes [axis, axis + its num_axes) of x."""
import torch

from digitslite.caffe import caffe_pb2
from digitslite.engine.layers.base import CaffeLayer, Shape, filler_or, register


class _Broadcast(CaffeLayer):
    """Resolves where the operand (a learned blob, or bottom 1) lines up with bottom 0."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None, axis: int, num_axes: int) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.require_bottoms(bottom_shapes, 1, 2)
        shape = bottom_shapes[0]
        if len(bottom_shapes) == 2:
            self.operand_shape = bottom_shapes[1]
            self.axis = 0 if not self.operand_shape else self.canonical_axis(axis, len(shape), "axis")
        else:
            self.axis = self.canonical_axis(axis, len(shape), "axis")
            if num_axes < -1 or self.axis + num_axes > len(shape):
                raise self.user_error(f"num_axes {num_axes} does not fit a {len(shape)}-axis bottom at "
                                      f"axis {self.axis}", "use -1 (to the end) or a smaller num_axes")
            end = len(shape) if num_axes == -1 else self.axis + num_axes
            self.operand_shape = shape[self.axis:end]
        covered = shape[self.axis:self.axis + len(self.operand_shape)]
        if tuple(covered) != tuple(self.operand_shape):
            raise self.user_error(f"an operand of shape {self.operand_shape} does not match the bottom "
                                  f"{shape} at axis {self.axis}",
                                  "make the second bottom's shape equal the bottom's dims from axis on")

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
        super().__init__(param, bottom_shapes, phase, generator, scale.axis, scale.num_axes)
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
        super().__init__(param, bottom_shapes, phase, generator, bias.axis, bias.num_axes)
        if len(bottom_shapes) == 1:
            self.bias = self.new_param(self.operand_shape, bias.filler, generator, "filler")
            self.blob_names = ("bias",)

    def forward(self, bottom: torch.Tensor, *operand: torch.Tensor) -> tuple[torch.Tensor]:
        bias = operand[0] if operand else self.bias
        return (bottom + self.aligned(bias, bottom.dim()),)
