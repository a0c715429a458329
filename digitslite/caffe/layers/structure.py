"""Layers that only rearrange data: Crop, Concat, Slice, Flatten, Reshape, Split, Silence, Tile and
SSD's Permute."""
import itertools
import math

from digitslite.caffe import caffe_pb2
from digitslite.caffe.footprint import Footprints, pixelwise, shifted
from digitslite.caffe.geometry import RuleError, Shape, canonical_axis, crop_offsets
from digitslite.caffe.layers.classification import along_channels
from digitslite.caffe.layers.record import Coord, Layer, LayerType, count, expect_bottoms, fmt


def _crop(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 2)
    data, reference = bottoms
    if len(data) != len(reference):
        raise RuleError(f"both bottoms need the same number of axes, got {fmt(data)} and {fmt(reference)}")
    start = canonical_axis(layer.crop_param.axis, len(data))
    offsets = crop_offsets(layer.crop_param, len(data) - start)
    for axis, offset in zip(range(start, len(data)), offsets, strict=True):
        if data[axis] - offset < reference[axis]:
            raise RuleError(f"cannot crop axis {axis} of {fmt(data)} at offset {offset} to the "
                            f"reference size {reference[axis]} of {fmt(reference)}; the reference "
                            "is larger: lower the offset or crop a larger blob")
    return [data[:start] + reference[start:]]


def _crop_footprint(layer: Layer, bottoms: Footprints):
    if not bottoms or bottoms[0] is None:
        return None
    start = canonical_axis(layer.crop_param.axis, 4)
    offsets = (0,) * (start - 2) + crop_offsets(layer.crop_param, 4 - start)[max(0, 2 - start):]
    return shifted(bottoms[0], offsets)


def _concat_or_slice_axis(param, legacy: str, shape: Shape) -> int:
    if param.HasField(legacy) and param.HasField("axis"):
        raise RuleError(f"give either axis or {legacy} (deprecated), not both")
    if param.HasField(legacy):
        if getattr(param, legacy) >= len(shape):
            raise RuleError(f"{legacy} {getattr(param, legacy)} is out of range for {fmt(shape)}")
        return getattr(param, legacy)
    return canonical_axis(param.axis, len(shape))


def _concat(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1, math.inf)
    first = bottoms[0]
    axis = _concat_or_slice_axis(layer.concat_param, "concat_dim", first)
    for shape in bottoms[1:]:
        if len(shape) != len(first) or shape[:axis] + shape[axis + 1:] != first[:axis] + first[axis + 1:]:
            raise RuleError(f"bottoms may differ only on axis {axis}, got {fmt(first)} and {fmt(shape)}")
    return [(*first[:axis], sum(shape[axis] for shape in bottoms), *first[axis + 1:])]


def _slice(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1)
    data, parts = bottoms[0], len(layer.top)
    axis = _concat_or_slice_axis(layer.slice_param, "slice_dim", data)
    size, points = data[axis], list(layer.slice_param.slice_point)
    if points:
        if len(points) != parts - 1:
            raise RuleError(f"{len(points)} slice_point value(s) for {parts} tops; give {parts - 1}")
        bounds = [0, *points, size]
        if any(a >= b for a, b in itertools.pairwise(bounds)):
            raise RuleError(f"slice_point {points} must increase strictly inside (0, {size})")
        sizes = [b - a for a, b in itertools.pairwise(bounds)]
    else:
        if parts == 0 or size % parts:
            raise RuleError(f"axis {axis} of size {size} does not split evenly into {parts} tops; "
                            "give slice_point")
        sizes = [size // parts] * parts
    return [(*data[:axis], piece, *data[axis + 1:]) for piece in sizes]


def _flatten(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1)
    data = bottoms[0]
    start = canonical_axis(layer.flatten_param.axis, len(data))
    end = canonical_axis(layer.flatten_param.end_axis, len(data))
    if end < start:
        raise RuleError(f"end_axis {layer.flatten_param.end_axis} comes before "
                        f"axis {layer.flatten_param.axis}")
    return [(*data[:start], count(data, start, end + 1), *data[end + 1:])]


def _reshape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1)
    param, data = layer.reshape_param, bottoms[0]
    start = param.axis if param.axis >= 0 else len(data) + param.axis + 1
    if not 0 <= start <= len(data):
        raise RuleError(f"axis {param.axis} is out of range for {fmt(data)}")
    if param.num_axes < -1:
        raise RuleError(f"num_axes must be -1 (to the end) or more, got {param.num_axes}")
    end = len(data) if param.num_axes == -1 else start + param.num_axes
    if end > len(data):
        raise RuleError(f"axis {param.axis} + num_axes {param.num_axes} runs past the axes of {fmt(data)}")
    dims = list(param.shape.dim)
    if dims.count(-1) > 1:
        raise RuleError("at most one dim may be -1 (inferred)")
    new = []
    for i, dim in enumerate(dims):
        if dim == 0:
            if start + i >= len(data):
                raise RuleError(f"dim {i} is 0 (copy) but the bottom {fmt(data)} has no axis {start + i}")
            new.append(data[start + i])
        elif dim < -1:
            raise RuleError(f"dim {dim} is invalid; use a positive size, 0 (copy) or -1 (infer)")
        else:
            new.append(dim)
    replaced, known = count(data, start, end), math.prod(d for d in new if d != -1)
    if -1 in new:
        if known == 0 or replaced % known:
            raise RuleError(f"cannot infer the -1 dim: {replaced} elements do not divide by {known}")
        new[new.index(-1)] = replaced // known
    elif known != replaced:
        raise RuleError(f"shape {dims} holds {known} elements where the bottom {fmt(data)} has "
                        f"{replaced}; the counts must be equal")
    return [data[:start] + tuple(new) + data[end:]]


def _split(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1)
    return [bottoms[0]] * len(layer.top)


def _silence(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1, math.inf)
    return []


def _tile(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1)
    data, tiles = bottoms[0], layer.tile_param.tiles
    if tiles < 1:
        raise RuleError(f"tiles must be at least 1, got {tiles}: give tile_param {{ tiles: N }}")
    axis = canonical_axis(layer.tile_param.axis, len(data))
    return [(*data[:axis], data[axis] * tiles, *data[axis + 1:])]


def permute_order(param: caffe_pb2.PermuteParameter, num_axes: int) -> tuple[int, ...]:
    """SSD's axis order: the listed axes, then every other axis in its order."""
    listed = list(param.order)
    if len(set(listed)) != len(listed) or any(axis >= num_axes for axis in listed):
        raise RuleError(f"order {listed} must name distinct axes below {num_axes}")
    return (*listed, *(axis for axis in range(num_axes) if axis not in listed))


def _permute(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1)
    data = bottoms[0]
    return [tuple(data[axis] for axis in permute_order(layer.permute_param, len(data)))]


TYPES = (
    LayerType("Crop", "crop", "Crops bottom 0 to bottom 1's size from `axis` on, at `offset`.",
              params=("crop_param",), tops=_crop, coord=Coord.CROP, footprint=_crop_footprint),
    LayerType("Concat", "merge", "Joins bottoms along `axis` (the channels by default).",
              params=("concat_param",), tops=_concat,
              footprint=lambda layer, bottoms: along_channels(layer.concat_param.axis, bottoms)),
    LayerType("Slice", "structure", "Splits a bottom along `axis` at `slice_point`s or evenly.",
              params=("slice_param",), tops=_slice),
    LayerType("Flatten", "structure", "Merges the axes from `axis` to `end_axis` into one.",
              params=("flatten_param",), tops=_flatten),
    LayerType("Reshape", "structure", "A new shape for the same values (0 copies a dim, -1 infers one).",
              params=("reshape_param",), tops=_reshape),
    LayerType("Split", "structure", "Copies a bottom to several tops (inserted where a blob fans out).",
              tops=_split, coord=Coord.IDENTITY, footprint=pixelwise),
    LayerType("Silence", "structure", "Consumes bottoms and produces nothing.", tops=_silence),
    LayerType("Tile", "structure", "Repeats the blocks from `axis` on `tiles` times.",
              params=("tile_param",), tops=_tile),
    LayerType("Permute", "structure", "SSD's fork layer: reorders the axes (`order`, the rest following).",
              params=("permute_param",), tops=_permute),
)
