"""What digitslite knows about one Caffe layer type, declared once (torch-free).

Shape inference, parameter shapes, the coordinate map, inference footprints, the deploy net, the
net graph, the engine and docs/LAYERS.md all read these records; none keeps its own list of type
names. A type's record lives in the module of its family, next to its rules.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from digitslite.caffe import caffe_pb2
from digitslite.caffe.footprint import FootprintRule, not_local
from digitslite.caffe.geometry import RuleError, Shape, Window

Layer = caffe_pb2.LayerParameter
TopRule = Callable[[Layer, list[Shape]], list[Shape]]
"""(layer, bottom shapes) -> top shapes, with Caffe's set-up checks (RuleError on a bad layer)."""
BlobRule = Callable[[Layer, list[Shape]], list[Shape]]
"""(layer, bottom shapes) -> parameter blob shapes in Caffe's blob order."""
WindowRule = Callable[[Layer, "Shape | None"], "Window | None"]
"""(layer, first bottom's shape or None) -> its sliding window (None: no window, e.g. global pooling)."""


class Coord(Enum):
    """How Caffe's coord_map relates a layer's top coordinates to its bottom's."""

    NONE = "undefined"           # coordinates cannot be followed through the layer
    IDENTITY = "identity"        # same pixel grid (element-wise layers)
    WINDOW = "window"            # a sliding window: top = (bottom + pad − centre) / stride
    TRANSPOSED = "transposed"    # the transposed window of a Deconvolution
    CROP = "crop"                # a shift by the crop offset


class Source(Enum):
    """Whether a layer feeds the net from outside."""

    NONE = "no"                  # computes its tops from its bottoms
    INPUT = "input"              # declares its tops' shapes (Input)
    DATASET = "dataset"          # reads records whose shape the dataset knows (without bottoms)


def no_blobs(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """The blob rule of layers without parameters."""
    return []


@dataclass(frozen=True)
class LayerType:
    """One Caffe layer type: its name, what it does, how its parameters resolve, its tops' and
    parameter blobs' shapes, its coordinate map and footprint, and how the net graph draws it."""

    name: str
    family: str                  # the group it is listed and drawn with (conv, pool, loss, ...)
    summary: str                 # one line for docs/LAYERS.md
    params: tuple[str, ...] = ()     # the LayerParameter messages it reads, e.g. convolution_param
    tops: TopRule | None = None      # None only for sources, whose tops the net's inputs give
    blobs: BlobRule = no_blobs
    window: WindowRule | None = None
    coord: Coord = Coord.NONE
    footprint: FootprintRule = not_local
    source: Source = Source.NONE
    loss: bool = False           # Caffe gives its top 0 a default loss_weight of 1


# ----------------------------------------------------------------------------------------------
# Small helpers for the rules


def count(shape: Shape, start: int = 0, end: int | None = None) -> int:
    """Caffe's count(start, end): the product of the dims in [start, end)."""
    return math.prod(shape[start:end])


def fmt(shape: Shape) -> str:
    return "(" + ",".join(map(str, shape)) + ")"


def expect_bottoms(bottoms: list[Shape], low: int, high: float | None = None) -> None:
    """Refuse a bottom count outside [low, high] (high None: exactly low)."""
    high = low if high is None else high
    if not low <= len(bottoms) <= high:
        wanted = str(low) if low == high else f"{low} or more" if high == math.inf else f"{low} to {high}"
        raise RuleError(f"takes {wanted} bottom(s), got {len(bottoms)}")


def same_shapes(bottoms: list[Shape]) -> Shape:
    if any(shape != bottoms[0] for shape in bottoms):
        raise RuleError("all bottoms must have the same shape, got " + ", ".join(map(fmt, bottoms)))
    return bottoms[0]


def up_to(tops: list[Shape], layer: Layer) -> list[Shape]:
    """Tops for a layer whose trailing tops are optional: as many as the prototxt lists."""
    return tops[:len(layer.top)] if len(layer.top) <= len(tops) else tops


def one_bottom_kept(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """The top rule of element-wise layers with one bottom: the top has the bottom's shape."""
    expect_bottoms(bottoms, 1)
    return [bottoms[0]]
