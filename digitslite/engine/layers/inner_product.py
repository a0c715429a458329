"""InnerProduct: a fully connected layer over all axes from `axis` on."""
import torch
import torch.nn.functional as F

from digitslite.caffe import caffe_pb2
from digitslite.engine.layers.base import CaffeLayer, Shape, count, register


@register("InnerProduct")
class InnerProduct(CaffeLayer):
    """y = x·Wᵀ + b with W of shape (num_output, K), or y = x·W + b with W (K, num_output) if transpose.

    K = count(axis, end); the top keeps the bottom's axes before `axis` and adds one of num_output.
    """

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        self.require_bottoms(bottom_shapes, 1, 1)
        ip = param.inner_product_param
        shape = bottom_shapes[0]
        self.axis = self.canonical_axis(ip.axis, len(shape), "inner_product_param.axis")
        if ip.num_output <= 0:
            raise self.user_error("num_output is missing or 0", "set inner_product_param.num_output > 0")
        self.transpose = ip.transpose
        inputs = count(shape, self.axis)
        weight_shape = (inputs, ip.num_output) if self.transpose else (ip.num_output, inputs)
        self.weight = self.new_param(weight_shape, ip.weight_filler, generator, "weight_filler")
        self.blob_names = ("weight",)
        self.bias = None
        if ip.bias_term:
            self.bias = self.new_param((ip.num_output,), ip.bias_filler, generator, "bias_filler")
            self.blob_names = ("weight", "bias")

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        rows = bottom.flatten(self.axis) if self.axis < bottom.dim() - 1 else bottom
        weight = self.weight.t() if self.transpose else self.weight
        return (F.linear(rows, weight, self.bias),)
