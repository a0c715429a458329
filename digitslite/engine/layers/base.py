"""The contract every engine layer follows, and the registry that maps Caffe type names to layers.

A layer is built from its LayerParameter and the shapes of its bottoms (known statically from
digitslite.caffe.shapes), so parameter shapes are fixed at construction, as in Caffe's SetUp.
The type's record (digitslite.caffe.layers) checks the parameters and resolves them once: the
layer receives its window and its parameter blob shapes and only computes.
"""
from collections.abc import Callable
from typing import ClassVar, TypeVar

import torch
from torch import nn

from digitslite.caffe import caffe_pb2
from digitslite.caffe.geometry import RuleError, Window
from digitslite.caffe.layers import LAYER_TYPES
from digitslite.engine.fillers import fill
from digitslite.errors import UserError

Shape = tuple[int, ...]

LAYERS: dict[str, type["CaffeLayer"]] = {}
LayerClass = TypeVar("LayerClass", bound=type["CaffeLayer"])


def register(*type_names: str) -> Callable[[LayerClass], LayerClass]:
    """Class decorator: make the layer class the implementation of the given Caffe type names,
    each of which must have a record; whether the class is a loss comes from the records."""

    def decorate(cls: LayerClass) -> LayerClass:
        for name in type_names:
            if name in LAYERS:
                raise ValueError(f"layer type {name!r} is registered twice")
            if name not in LAYER_TYPES or LAYER_TYPES[name].tops is None:
                raise ValueError(f"layer type {name!r} needs a record with a top rule in "
                                 "digitslite.caffe.layers")
            LAYERS[name] = cls
        losses = {LAYER_TYPES[name].loss for name in type_names}
        if len(losses) != 1:
            raise ValueError(f"{', '.join(type_names)} disagree on being a loss in their records")
        cls.is_loss = losses.pop()
        return cls

    return decorate


class CaffeLayer(nn.Module):
    """One Caffe layer as a torch module.

    Subclasses set `blob_names` to their learnable/stored blobs in Caffe's blob order (the order of
    `.caffemodel` blobs and of `param { }` specs), e.g. ("weight", "bias"), and create those as
    attributes in __init__, shaped as `blob_shapes` says. `forward` takes the bottoms in prototxt
    order and returns a tuple of tops in prototxt order. `window` is the resolved sliding window of
    windowed types. `is_loss` comes from the record: Caffe gives a loss's top 0 a default
    loss_weight of 1.
    """

    is_loss: ClassVar[bool] = False
    blob_names: tuple[str, ...] = ()

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: list[Shape], phase: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.param = param
        self.phase = phase
        # Read once here: forward() must not touch the protobuf, so torch.compile can trace it.
        self.top_count = len(param.top)
        record = LAYER_TYPES[param.type]
        try:
            record.tops(param, bottom_shapes)
            self.window: Window | None = (record.window(param, bottom_shapes[0])
                                          if record.window is not None else None)
            self.blob_shapes: list[Shape] = record.blobs(param, bottom_shapes)
        except RuleError as exc:
            raise UserError(f"layer '{param.name}' ({param.type}): {exc}") from None

    def blobs(self) -> list[torch.Tensor]:
        """The layer's blobs in Caffe order (weights are nn.Parameters; statistics may be buffers)."""
        return [getattr(self, name) for name in self.blob_names]

    def user_error(self, problem: str, fix: str) -> UserError:
        """A UserError that names this layer, says what is wrong and how to fix it."""
        return UserError(f"layer '{self.param.name}' ({self.param.type}): {problem}; {fix}")

    def new_param(self, shape: Shape, filler: caffe_pb2.FillerParameter,
                  generator: torch.Generator | None, field: str) -> nn.Parameter:
        """A learnable blob of the given shape, initialised by its filler as Caffe's SetUp does."""
        tensor = torch.empty(shape)
        fill(tensor, filler, generator, context=f"layer '{self.param.name}' ({self.param.type}) {field}")
        return nn.Parameter(tensor)


def upcast(tensor: torch.Tensor) -> torch.Tensor:
    """A 16-bit float tensor as float32 (others unchanged): Caffe computes in float32, and sums of
    squares, batch statistics and log-probabilities overflow or lose precision in 16 bits (AMP)."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def filler_or(message: caffe_pb2.FillerParameter, present: bool, **default: float | str
              ) -> caffe_pb2.FillerParameter:
    """The given filler, or Caffe's layer-specific default when the prototxt leaves it out."""
    return message if present else caffe_pb2.FillerParameter(**default)
