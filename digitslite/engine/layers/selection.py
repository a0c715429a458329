"""Layers that pick items along axis 0 by data: Filter (by a selector) and BatchReindex (by indices)."""
import torch

from digitslite.caffe import caffe_pb2
from digitslite.engine.layers.base import CaffeLayer, Shape, register


@register("Filter")
class Filter(CaffeLayer):
    """Keep the items whose selector (last bottom) is non-zero, in every other bottom; one top per
    data bottom. The selector gets no gradient; dropped items get a zero gradient."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(param, bottom_shapes, phase, generator)
        if len(param.top) != len(bottom_shapes) - 1:
            raise self.user_error(f"it has {len(param.top)} tops for {len(bottom_shapes) - 1} data bottoms",
                                  "give one top per bottom except the selector")

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:
        *data, selector = bottoms
        kept = torch.nonzero(selector.detach().reshape(selector.shape[0], -1)[:, 0]).flatten()
        return tuple(blob.index_select(0, kept) for blob in data)


@register("BatchReindex")
class BatchReindex(CaffeLayer):
    """top[i] = bottom[indices[i]]; gradients of repeated items add up, the indices get none."""

    def forward(self, bottom: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor]:
        picked = indices.detach().long()
        if not torch.compiler.is_compiling() and bool(((picked < 0) | (picked >= bottom.shape[0])).any()):
            raise self.user_error(f"an index is outside the {bottom.shape[0]} items of the first bottom",
                                  f"feed indices in [0, {bottom.shape[0]})")
        return (bottom.index_select(0, picked),)
