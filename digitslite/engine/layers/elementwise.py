"""Eltwise: SUM (with coefficients), PROD or MAX over bottoms of one shape."""
import functools
import operator

import torch

from digitslite.caffe import caffe_pb2
from digitslite.engine.layers.base import CaffeLayer, Shape, register

Op = caffe_pb2.EltwiseParameter


@register("Eltwise")
class Eltwise(CaffeLayer):
    """Element-wise combination of ≥ 2 bottoms.

    MAX follows Caffe's tie rule: bottom 1 beats bottom 0 on a tie, and each later bottom must be
    strictly greater to take over; the gradient reaches the winner only. PROD's gradient is the
    product of the other bottoms (Caffe's stable_prod_grad form, used for both settings).
    """

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        eltwise = param.eltwise_param
        self.operation = eltwise.operation
        self.coeffs = tuple(eltwise.coeff)

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor]:
        if self.operation == Op.PROD:
            return (functools.reduce(operator.mul, bottoms),)
        if self.operation == Op.MAX:
            first, second, *rest = bottoms
            top = torch.where(first > second, first, second)
            for bottom in rest:
                top = torch.where(bottom > top, bottom, top)
            return (top,)
        coeffs = self.coeffs or (1.0,) * len(bottoms)
        return (functools.reduce(operator.add, (c * b if c != 1.0 else b for c, b in zip(coeffs, bottoms,
                                                                                          strict=True))),)
