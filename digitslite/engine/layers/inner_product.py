"""InnerProduct: a fully connected layer over all axes from `axis` on."""
import torch
import torch.nn.functional as F

from digitslite.caffe import caffe_pb2
from digitslite.caffe.geometry import canonical_axis
from digitslite.engine.layers.base import CaffeLayer, Shape, register


@register("InnerProduct")
class InnerProduct(CaffeLayer):
    """y = x·Wᵀ + b with W of shape (num_output, K), or y = x·W + b with W (K, num_output) if transpose.

    K = count(axis, end); the top keeps the bottom's axes before `axis` and adds one of num_output.
    """

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        ip = param.inner_product_param
        self.axis = canonical_axis(ip.axis, len(bottom_shapes[0]))
        self.transpose = ip.transpose
        self.weight = self.new_param(self.blob_shapes[0], ip.weight_filler, generator, "weight_filler")
        self.blob_names = ("weight",)
        self.bias = None
        if ip.bias_term:
            self.bias = self.new_param(self.blob_shapes[1], ip.bias_filler, generator, "bias_filler")
            self.blob_names = ("weight", "bias")

    def forward(self, bottom: torch.Tensor) -> tuple[torch.Tensor]:
        rows = bottom.flatten(self.axis) if self.axis < bottom.dim() - 1 else bottom
        weight = self.weight.t() if self.transpose else self.weight
        return (F.linear(rows, weight, self.bias),)
