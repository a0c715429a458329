"""InnerProduct (a fully connected layer over all axes from `axis` on) and Embed (a learned lookup)."""
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


@register("Embed")
class Embed(CaffeLayer):
    """A learned lookup: y = W[x] + b with W (input_dim, num_output); x holds integer indices.

    The top is the bottom's shape plus num_output; like Caffe, no gradient reaches the indices.
    """

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        embed = param.embed_param
        self.weight = self.new_param(self.blob_shapes[0], embed.weight_filler, generator, "weight_filler")
        self.blob_names = ("weight",)
        self.bias = None
        if embed.bias_term:
            self.bias = self.new_param(self.blob_shapes[1], embed.bias_filler, generator, "bias_filler")
            self.blob_names = ("weight", "bias")

    def forward(self, indices: torch.Tensor) -> tuple[torch.Tensor]:
        values = indices.detach()
        picked = values.long()
        if not torch.compiler.is_compiling() and bool(
                ((picked < 0) | (picked >= self.weight.shape[0]) | (picked != values)).any()):
            raise self.user_error(f"an input is not an integer index in [0, {self.weight.shape[0]})",
                                  "feed integer indices below input_dim")
        top = F.embedding(picked, self.weight)
        return (top + self.bias if self.bias is not None else top,)
