"""The contract every engine layer follows, and the registry that maps Caffe type names to layers.

A layer is built from its LayerParameter and the shapes of its bottoms (known statically from
digitslite.caffe.shapes), so parameter shapes are fixed at construction, as in Caffe's SetUp.
The type's record (digitslite.caffe.layers) checks the parameters and resolves them once: the
layer receives its window and its parameter blob shapes and only computes.
"""
import math
from typing import ClassVar

import torch
from torch import nn

from digitslite.caffe import caffe_pb2
from digitslite.caffe.geometry import RuleError, Window
from digitslite.caffe.layers import LAYER_TYPES
from digitslite.engine.fillers import fill
from digitslite.errors import UserError

Shape = tuple[int, ...]

LAYERS: dict[str, type["CaffeLayer"]] = {}


def register(*type_names: str):
    """Class decorator: make the layer class the implementation of the given Caffe type names,
    each of which must have a record; whether the class is a loss comes from the records."""

    def decorate(cls: type["CaffeLayer"]) -> type["CaffeLayer"]:
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

    def canonical_axis(self, axis: int, num_axes: int, field: str) -> int:
        """Caffe's CanonicalAxisIndex: a negative axis counts from the end; out of range is an error."""
        if not -num_axes <= axis < num_axes:
            raise self.user_error(f"{field} {axis} is out of range for a {num_axes}-axis bottom",
                                  f"use an axis in [{-num_axes}, {num_axes})")
        return axis + num_axes if axis < 0 else axis

    def require_bottoms(self, bottom_shapes: list[Shape], minimum: int, maximum: int | None = None) -> None:
        """Check the number of bottoms against what the layer type accepts."""
        count = len(bottom_shapes)
        if count < minimum or (maximum is not None and count > maximum):
            wanted = (f"exactly {minimum}" if maximum == minimum else
                      f"at least {minimum}" if maximum is None else f"{minimum} to {maximum}")
            raise self.user_error(f"it has {count} bottom(s) but takes {wanted}",
                                  "fix the layer's bottom list")

    def require_4d(self, shape: Shape) -> None:
        """Check that a bottom is N×C×H×W, for layer types that work on images only."""
        if len(shape) != 4:
            raise self.user_error(f"its bottom has shape {shape}",
                                  f"{self.param.type} needs a 4-D N×C×H×W bottom")

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


def count(shape: Shape, start: int = 0, end: int | None = None) -> int:
    """Caffe's count(start, end): the product of the dims in [start, end)."""
    return math.prod(shape[start:end])


def filler_or(message: caffe_pb2.FillerParameter, present: bool, **default: float | str
              ) -> caffe_pb2.FillerParameter:
    """The given filler, or Caffe's layer-specific default when the prototxt leaves it out."""
    return message if present else caffe_pb2.FillerParameter(**default)
