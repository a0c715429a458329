"""The contract every engine layer follows, and the registry that maps Caffe type names to layers.

A layer is built from its LayerParameter and the shapes of its bottoms (known statically from
digitslite.caffe.shapes), so parameter shapes are fixed at construction, as in Caffe's SetUp.
"""
from typing import ClassVar

import torch
from torch import nn

from digitslite.caffe import caffe_pb2

Shape = tuple[int, ...]

LAYERS: dict[str, type["CaffeLayer"]] = {}


def register(*type_names: str):
    """Class decorator: make the layer class the implementation of the given Caffe type names."""

    def decorate(cls: type["CaffeLayer"]) -> type["CaffeLayer"]:
        for name in type_names:
            if name in LAYERS:
                raise ValueError(f"layer type {name!r} is registered twice")
            LAYERS[name] = cls
        return cls

    return decorate


class CaffeLayer(nn.Module):
    """One Caffe layer as a torch module.

    Subclasses set `blob_names` to their learnable/stored blobs in Caffe's blob order (the order of
    `.caffemodel` blobs and of `param { }` specs), e.g. ("weight", "bias"), and create those as
    attributes in __init__. `forward` takes the bottoms in prototxt order and returns a tuple of
    tops in prototxt order. Loss layers set `is_loss = True`: Caffe then gives top 0 a default
    loss_weight of 1.
    """

    is_loss: ClassVar[bool] = False
    blob_names: tuple[str, ...] = ()

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.param = param
        self.phase = phase

    def blobs(self) -> list[torch.Tensor]:
        """The layer's blobs in Caffe order (weights are nn.Parameters; statistics may be buffers)."""
        return [getattr(self, name) for name in self.blob_names]
