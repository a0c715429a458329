"""Reduction: one value per leading position, from every axis from `axis` on."""
import torch

from digitslite.caffe import caffe_pb2
from digitslite.caffe.geometry import canonical_axis
from digitslite.engine.layers.base import CaffeLayer, Shape, register

Op = caffe_pb2.ReductionParameter


@register("Reduction")
class Reduction(CaffeLayer):
    """coeff · SUM / ASUM (Σ|x|) / SUMSQ (Σx²) / MEAN over axes [axis, end); the top keeps axes
    [0, axis) (a scalar for the default axis 0)."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        reduction = param.reduction_param
        self.axis = canonical_axis(reduction.axis, len(bottom_shapes[0]))
        self.operation, self.coeff = reduction.operation, reduction.coeff

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        rows = bottom.reshape(*bottom.shape[:self.axis], -1)
        if self.operation == Op.ASUM:
            rows = rows.abs()
        elif self.operation == Op.SUMSQ:
            rows = rows.square()
        top = rows.mean(dim=-1) if self.operation == Op.MEAN else rows.sum(dim=-1)
        return (top * self.coeff if self.coeff != 1 else top,)
