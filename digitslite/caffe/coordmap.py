"""Caffe's coord_map (caffe-spec §6) over a NetParameter, in exact fractions.

FCN nets align an upsampled score map with the input through Crop offsets that only come out
right when derived from the geometry of every layer on the way; this module derives them the way
`python/caffe/coord_map.py` does, checks the ones written in a prototxt, fills in missing ones,
and prints the stride / scale / offset table of DIGITS' "Image Segmentation Using DIGITS 5"
(Table 2).

A map (axis, a, b) says: top coordinate = a · bottom coordinate + b on every spatial axis after
`axis` (None: fits any axis). a and b hold one Fraction per spatial axis, or a single one shared
by all of them.

Blobs are followed by version: after `conv1` and an in-place `relu1`, the name "conv1" refers to
relu1's output, and a Crop's bottoms are the versions that exist where the Crop stands.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from digitslite.caffe import caffe_pb2
from digitslite.caffe.geometry import RuleError, Window
from digitslite.caffe.layers import LAYER_TYPES, Coord
from digitslite.caffe.shapes import input_tops
from digitslite.errors import UserError

if TYPE_CHECKING:
    from digitslite.caffe.sourcemap import SourceMap

Values = tuple[Fraction, ...]
Layer = caffe_pb2.LayerParameter

_WINDOWED = (Coord.WINDOW, Coord.TRANSPOSED)


class CoordMapError(UserError):
    """Two blobs whose coordinates cannot be related, or a Crop offset that cannot be derived."""


def _collapse(values: Sequence) -> tuple:
    """One value when every spatial axis has the same one, so equal maps compare equal."""
    return (values[0],) if len(set(values)) == 1 else tuple(values)


def _broadcast(*groups: Values) -> list[Values]:
    """Spread single values over as many spatial axes as the longest group has."""
    size = max(map(len, groups))
    if any(len(values) not in (1, size) for values in groups):
        raise RuleError("maps over " + " and ".join(str(len(v)) for v in groups) + " spatial axes "
                        "cannot be combined")
    return [values * size if len(values) == 1 else values for values in groups]


@dataclass(frozen=True)
class CoordMap:
    """top = scale · bottom + offset on each spatial axis after `axis` (None: any axis)."""

    axis: int | None
    scale: Values
    offset: Values

    def after(self, first: CoordMap) -> CoordMap:
        """This map applied to the output of `first` (Caffe's compose(self, first))."""
        if self.axis is not None and first.axis is not None and self.axis != first.axis:
            raise RuleError(f"the channel axis changes from {first.axis} to {self.axis} on the way")
        scale, offset, first_scale, first_offset = _broadcast(self.scale, self.offset, first.scale,
                                                              first.offset)
        return CoordMap(axis=self.axis if self.axis is not None else first.axis,
                        scale=_collapse([a * fa for a, fa in zip(scale, first_scale, strict=True)]),
                        offset=_collapse([a * fb + b for a, b, fb in zip(scale, offset, first_offset,
                                                                         strict=True)]))

    def inverse(self) -> CoordMap:
        scale, offset = _broadcast(self.scale, self.offset)
        return CoordMap(axis=self.axis, scale=_collapse([1 / a for a in scale]),
                        offset=_collapse([-b / a for a, b in zip(scale, offset, strict=True)]))


IDENTITY = CoordMap(axis=None, scale=(Fraction(1),), offset=(Fraction(0),))


def _coord(layer: Layer) -> Coord:
    record = LAYER_TYPES.get(layer.type)
    return record.coord if record is not None else Coord.NONE


def _window(layer: Layer) -> Window | None:
    """The sliding window of a windowed layer, as far as its parameters give it (None: global)."""
    return LAYER_TYPES[layer.type].window(layer, None)


def layer_map(layer: Layer) -> CoordMap | None:
    """The map from a layer's bottom to its top, or None where Caffe's is undefined."""
    kind = _coord(layer)
    if kind is Coord.IDENTITY:
        return IDENTITY
    if kind is Coord.CROP:
        offsets = tuple(Fraction(-o) for o in layer.crop_param.offset) or (Fraction(0),)
        return CoordMap(axis=layer.crop_param.axis - 1, scale=(Fraction(1),), offset=_collapse(offsets))
    window = _window(layer) if kind in _WINDOWED else None
    if window is None:
        return None
    # An output index i has its receptive-field centre at input s·i − p + (extent − 1)/2.
    centre = [Fraction(e - 1, 2) for e in window.extent]
    if kind is Coord.TRANSPOSED:
        scale = [Fraction(s) for s in window.stride]
        offset = [c - p for c, p in zip(centre, window.pad, strict=True)]
    else:
        scale = [Fraction(1, s) for s in window.stride]
        offset = [(p - c) / s for c, p, s in zip(centre, window.pad, window.stride, strict=True)]
    return CoordMap(axis=window.channel_axis, scale=_collapse(scale), offset=_collapse(offset))


# ----------------------------------------------------------------------------------------------
# The blob graph

Node = tuple[int | None, str]  # (index of the producing layer, blob name): one version of a blob;
# a blob no layer produces (a legacy `input:` the upgrade has not turned into a layer) has index None


class _Graph:
    """Which layer produced each bottom, so walks follow blob versions through in-place layers."""

    def __init__(self, net: caffe_pb2.NetParameter, source_map: SourceMap | None) -> None:
        self.layers = list(net.layer)
        self.source_map = source_map
        self.producers: list[list[int | None]] = []
        latest: dict[str, int] = {}
        for index, layer in enumerate(self.layers):
            self.producers.append([latest.get(name) for name in layer.bottom])
            latest.update(dict.fromkeys(layer.top, index))
        self.latest = latest

    def where(self, index: int) -> str:
        layer = self.layers[index]
        place = f"{self.source_map.where(layer.name)}: " if self.source_map is not None else ""
        return f"{place}layer '{layer.name}' ({layer.type})"

    def blob(self, name: str) -> Node:
        if name in self.latest:
            return self.latest[name], name
        if any(name in layer.bottom for layer in self.layers):
            return None, name
        raise CoordMapError(f"the net has no blob named '{name}'")

    def bottom(self, index: int, position: int) -> Node:
        return self.producers[index][position], self.layers[index].bottom[position]

    def walked_bottoms(self, index: int) -> list[Node]:
        """The bottoms a backward walk follows: all of them, except a Crop's size reference."""
        layer = self.layers[index]
        count = 1 if layer.type == "Crop" else len(layer.bottom)
        return list(zip(self.producers[index][:count], layer.bottom, strict=False))

    def map_of(self, index: int | None) -> CoordMap | None:
        if index is None:
            return None
        try:
            return layer_map(self.layers[index])
        except RuleError as exc:
            raise CoordMapError(f"{self.where(index)}: {exc}") from None

    def walk(self, start: Node, stops: list[int]) -> Iterator[tuple[Node, CoordMap]]:
        """Breadth-first from `start` towards the inputs, yielding each blob version with its map
        into `start`'s coordinates; layers without a map end their branch and go into `stops`."""
        maps = {start: IDENTITY}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            yield node, maps[node]
            step = self.map_of(node[0])
            if step is None:
                if node[0] is not None:
                    stops.append(node[0])
                continue
            for bottom in self.walked_bottoms(node[0]):
                if bottom not in maps:
                    try:
                        maps[bottom] = maps[node].after(step)
                    except RuleError as exc:
                        raise CoordMapError(f"{self.where(node[0])}: {exc}") from None
                    queue.append(bottom)

    def map_between(self, source: Node, target: Node) -> CoordMap:
        """The map from `source` coordinates to `target` coordinates (Caffe's coord_map_from_to)."""
        stops: list[int] = []
        to_source = dict(self.walk(source, stops))
        for node, to_target in self.walk(target, stops):
            if node in to_source:
                try:
                    return to_target.after(to_source[node].inverse())
                except RuleError as exc:
                    raise CoordMapError(f"cannot relate '{source[1]}' to '{target[1]}': {exc}") from None
        blockers = ", ".join(dict.fromkeys(self.where(index) for index in stops)) or "the net's inputs"
        raise CoordMapError(f"cannot relate '{source[1]}' to '{target[1]}': walking back from both never "
                            f"reaches a common blob (the walks stop at {blockers}, which have no "
                            "coordinate map)")

    def path(self, source: str, target: Node) -> list[int]:
        """Layer indices from just after blob `source` up to `target`'s producer, in forward order;
        the search prefers first bottoms and never enters a Crop's size reference."""
        stack: list[tuple[Node, list[int]]] = [(target, [])]
        seen = set()
        while stack:
            node, below = stack.pop()
            if node[1] == source:
                return below
            if node in seen or node[0] is None:
                continue
            seen.add(node)
            for bottom in reversed(self.walked_bottoms(node[0])):
                stack.append((bottom, [node[0], *below]))
        raise CoordMapError(f"no chain of layers leads from '{source}' to '{target[1]}'")


# ----------------------------------------------------------------------------------------------
# Public operations


def coord_map_from_to(net: caffe_pb2.NetParameter, top_from: str, top_to: str,
                      source_map: SourceMap | None = None) -> CoordMap:
    """The map from `top_from` coordinates to `top_to` coordinates (the blobs' final versions)."""
    graph = _Graph(net, source_map)
    return graph.map_between(graph.blob(top_from), graph.blob(top_to))


def _derive_crop(graph: _Graph, index: int) -> list[int]:
    layer = graph.layers[index]
    if len(layer.bottom) != 2:
        raise CoordMapError(f"{graph.where(index)}: a Crop needs 2 bottoms, got {len(layer.bottom)}")
    cropped, reference = graph.bottom(index, 0), graph.bottom(index, 1)
    found = graph.map_between(cropped, reference)
    numbers = (f"the map from '{cropped[1]}' to '{reference[1]}' has scale "
               f"{_text(found.scale)} and offset {_text(found.offset)}")
    if any(a != 1 for a in found.scale):
        raise CoordMapError(f"{graph.where(index)}: {numbers}; a crop needs scale 1, so the blobs are at "
                            "different resolutions: fix the strides or the upsampling")
    if any(b > 0 for b in found.offset):
        raise CoordMapError(f"{graph.where(index)}: {numbers}; the crop offset would be negative "
                            f"('{cropped[1]}' is smaller than needed): lower the deconvolution pad or "
                            "pad the input more")
    if any(b.denominator != 1 for b in found.offset):
        raise CoordMapError(f"{graph.where(index)}: {numbers}; the crop offset is not a whole number: "
                            "change a kernel size or pad so the centres line up")
    if found.axis is not None and found.axis + 1 != layer.crop_param.axis:
        raise CoordMapError(f"{graph.where(index)}: crop_param axis is {layer.crop_param.axis} but the "
                            f"blobs' channel axis is {found.axis}: set axis {found.axis + 1}")
    return [int(-b) for b in found.offset]


@dataclass(frozen=True)
class CropCheck:
    """A Crop layer's offset as written (None: not written, which Caffe reads as 0) and as derived.

    `derived` is None where the coordinate map gives no whole offset (a half-pixel, a scale other
    than 1, a layer without a map on the way); `note` says why. Caffe runs such a net with the
    written offset, so it is a warning, never a refusal, and nothing is filled in.
    """

    layer: str
    written: list[int] | None
    derived: list[int] | None
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.derived is None or same_offsets(self.written or [0], self.derived)


def same_offsets(left: Sequence[int], right: Sequence[int]) -> bool:
    """Whether two offset lists crop alike (one value stands for every axis)."""
    try:
        a, b = _broadcast(tuple(map(Fraction, left)), tuple(map(Fraction, right)))
    except RuleError:
        return False
    return a == b


def _checks(net: caffe_pb2.NetParameter, source_map: SourceMap | None) -> list[tuple[int, CropCheck]]:
    """Each Crop (index, check), derived in net order on a copy whose earlier Crops already hold
    their derived offsets: a later crop's walk may pass through an earlier one (FCN-8s' score_pool3c
    through score_pool4c), and must see it aligned."""
    aligned = caffe_pb2.NetParameter()
    aligned.CopyFrom(net)
    graph = _Graph(aligned, source_map)
    checks = []
    for index, layer in enumerate(aligned.layer):
        if layer.type != "Crop":
            continue
        written = list(layer.crop_param.offset) or None
        try:
            derived = _derive_crop(graph, index)
        except CoordMapError as exc:
            checks.append((index, CropCheck(layer=layer.name, written=written, derived=None, note=str(exc))))
            continue
        layer.crop_param.ClearField("offset")
        layer.crop_param.offset.extend(derived)
        checks.append((index, CropCheck(layer=layer.name, written=written, derived=derived)))
    return checks


def crop_report(net: caffe_pb2.NetParameter, source_map: SourceMap | None = None) -> list[CropCheck]:
    """Written against derived offsets for every Crop layer, in net order."""
    return [check for _, check in _checks(net, source_map)]


def fill_crop_offsets(net: caffe_pb2.NetParameter, correct: bool = False,
                      source_map: SourceMap | None = None) -> caffe_pb2.NetParameter:
    """A copy of `net` whose Crop layers without an offset get the derived one; with `correct`,
    wrong offsets are replaced too. A Crop the map gives no whole offset for keeps what is written."""
    fixed = caffe_pb2.NetParameter()
    fixed.CopyFrom(net)
    for index, check in _checks(net, source_map):
        if check.derived is not None and (check.written is None or (correct and not check.ok)):
            offsets = fixed.layer[index].crop_param.offset
            del offsets[:]
            offsets.extend(check.derived)
    return fixed


# ----------------------------------------------------------------------------------------------
# DIGITS' stride table


@dataclass(frozen=True)
class StrideRow:
    """One layer of the path. `offset` is the layer's own (p − (k − 1)/2)/s, or (k − 1)/2 − p for a
    deconvolution; `cumulative_scale` is the product of scales from the path start through this
    layer; `cumulative_offset` is the offset of the map from this layer's bottom to the path's
    end (Table 2: summed from the top down, each layer's offset divided by its cumulative scale
    when the path ends at scale 1). stride/pad/kernel are None for a Crop."""

    layer: str
    type: str
    stride: tuple[int, ...] | None
    pad: tuple[int, ...] | None
    kernel: tuple[int, ...] | None
    scale: Values
    cumulative_scale: Values
    offset: Values
    cumulative_offset: Values


@dataclass(frozen=True)
class StrideTable:
    """The rows along a path, and the Crop offset it implies (None where the path does not end
    at scale 1 with a whole, non-negative offset)."""

    rows: list[StrideRow]
    crop_offset: list[int] | None


def _table_ends(net: caffe_pb2.NetParameter, from_blob: str | None, to_blob: str | None) -> tuple[str, str]:
    crops = [layer for layer in net.layer if layer.type == "Crop" and len(layer.bottom) == 2]
    if crops:
        return from_blob or crops[-1].bottom[1], to_blob or crops[-1].bottom[0]
    if to_blob is None:
        raise CoordMapError(f"net '{net.name}' has no Crop layer to take the path from: name the blob to "
                            "end at (--to on the command line)")
    inputs = input_tops(net)
    if from_blob is None and not inputs:
        raise CoordMapError(f"net '{net.name}' has no input layer: name the blob to start at (--from)")
    return from_blob or inputs[0], to_blob


def _window_numbers(layer: Layer) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    window = _window(layer)
    return _collapse(window.stride), _collapse(window.pad), _collapse(window.kernel)


def stride_table(net: caffe_pb2.NetParameter, from_blob: str | None = None, to_blob: str | None = None,
                 source_map: SourceMap | None = None) -> StrideTable:
    """Stride, pad, kernel, scale and offset of every Convolution, Pooling, Deconvolution and Crop
    on the path from `from_blob` to `to_blob` (defaults: the last Crop's size reference and the blob
    it crops; pass-through layers are skipped, their map is the identity)."""
    graph = _Graph(net, source_map)
    start, end = _table_ends(net, from_blob, to_blob)
    graph.blob(start)
    path = graph.path(start, graph.blob(end))
    steps = []
    for index in path:
        step = graph.map_of(index)
        if step is None:
            raise CoordMapError(f"{graph.where(index)} lies on the path from '{start}' to '{end}' but has "
                                "no coordinate map (only convolutions, poolings, deconvolutions, crops and "
                                "element-wise layers do)")
        steps.append((index, step))
    to_end: list[CoordMap] = []
    suffix = IDENTITY
    for index, step in reversed(steps):
        try:
            suffix = suffix.after(step)
        except RuleError as exc:
            raise CoordMapError(f"{graph.where(index)}: {exc}") from None
        to_end.append(suffix)
    to_end.reverse()
    rows, from_start = [], IDENTITY
    for (index, step), tail in zip(steps, to_end, strict=True):
        from_start = step.after(from_start)
        layer = graph.layers[index]
        kind = _coord(layer)
        if kind not in _WINDOWED and kind is not Coord.CROP:
            continue
        stride, pad, kernel = _window_numbers(layer) if kind in _WINDOWED else (None, None, None)
        rows.append(StrideRow(layer=layer.name, type=layer.type, stride=stride, pad=pad, kernel=kernel,
                              scale=step.scale, cumulative_scale=from_start.scale, offset=step.offset,
                              cumulative_offset=tail.offset))
    fits = all(a == 1 for a in suffix.scale) and all(b >= 0 and b.denominator == 1 for b in suffix.offset)
    return StrideTable(rows=rows, crop_offset=[int(b) for b in suffix.offset] if fits else None)


def _text(values: Values) -> str:
    return str(values[0]) if len(values) == 1 else "[" + ", ".join(map(str, values)) + "]"
