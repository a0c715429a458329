"""Static shape inference with Caffe's rules (caffe-spec §2.6, §8).

The engine sizes every parameter blob from these shapes, and `digitslite net check` uses them to
refuse a bad net before any tensor exists, so each rule follows Caffe's own Reshape/LayerSetUp
checks and every refusal says which layer, where and how to fix it. The per-type rules are the
layer records' (digitslite.caffe.layers); this module walks the net and sizes its inputs.

Shapes of a net's inputs come from `Input` layers (`input_param.shape`) or from the caller's
`input_shapes` (top name -> dims), which win over the prototxt. Data-source layers (`Data`,
`ImageData`, and `Python` layers without bottoms) read records whose shape only the dataset knows,
so the caller gives it:
* as N,C,H,W or as C,H,W; a 3-value shape gets N from `batch_size` (1 for Python layers);
* `transform_param.crop_size` then replaces H and W, and ImageData's `new_height`/`new_width`
  resize first, as Caffe does to each record;
* a Data/ImageData layer's second top is Caffe's label vector, shape (N,);
* any other data top not given (the label of a segmentation net, whether its own Data layer or a
  Python layer's second top) is (N,1,H,W) after the first data top's shape.
An `HDF5Data` layer's files say their shapes: tops not given are read from its first file
(digitslite.caffe.hdf5_source).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from digitslite.caffe import caffe_pb2, hdf5_source
from digitslite.caffe.geometry import RuleError, Shape
from digitslite.caffe.layers import LAYER_TYPES, REFUSED_TYPES, Source
from digitslite.errors import UserError

if TYPE_CHECKING:
    from digitslite.caffe.sourcemap import SourceMap

Layer = caffe_pb2.LayerParameter


class ShapeError(UserError):
    """A net whose layers do not fit Caffe's shape rules, or whose input shapes are unknown."""


# ----------------------------------------------------------------------------------------------
# Net inputs

def is_source(layer: Layer) -> bool:
    """Whether the layer feeds the net from outside (Input, or a data layer without bottoms)."""
    record = LAYER_TYPES.get(layer.type)
    source = record.source if record is not None else Source.NONE
    return source is Source.INPUT or (source is Source.DATASET and not layer.bottom)


def input_tops(net: caffe_pb2.NetParameter) -> list[str]:
    """The tops of the net's Input and data layers, in order: the blobs input_shapes can name."""
    tops = (top for layer in net.layer if is_source(layer) for top in layer.top)
    return list(dict.fromkeys(tops))


def _input_layer_tops(layer: Layer, given: Mapping[str, Shape]) -> list[Shape]:
    declared = [tuple(blob.dim) for blob in layer.input_param.shape]
    if len(declared) not in (0, 1, len(layer.top)):
        raise RuleError(f"input_param has {len(declared)} shapes for {len(layer.top)} tops; "
                        "give 1 or one per top")
    tops = []
    for index, top in enumerate(layer.top):
        if top in given:
            tops.append(given[top])
        elif declared:
            tops.append(declared[index if len(declared) > 1 else 0])
        else:
            raise RuleError(f"the shape of '{top}' is not declared: give input_param "
                            f"{{ shape {{ dim: ... }} }} or pass it (--input-shape {top}=N,C,H,W "
                            "on the command line)")
    return tops


def _as_read(layer: Layer, dims: Shape) -> Shape:
    """A record shape given by the caller, completed and transformed as the data layer does."""
    if layer.type == "Data":
        batch = layer.data_param.batch_size
    elif layer.type == "ImageData":
        batch = layer.image_data_param.batch_size
    elif layer.type == "HDF5Data":
        batch = layer.hdf5_data_param.batch_size
    else:
        batch = 1
    if len(dims) == 3:
        dims = (batch or 1, *dims)
    if len(dims) != 4:
        return dims
    height, width = dims[2:]
    if layer.type == "ImageData" and layer.image_data_param.new_height and layer.image_data_param.new_width:
        height, width = layer.image_data_param.new_height, layer.image_data_param.new_width
    crop = layer.transform_param.crop_size
    if crop:
        if crop > height or crop > width:
            raise RuleError(f"crop_size {crop} is larger than the {height}x{width} records; "
                            "give the dataset's real image size or a smaller crop_size")
        height = width = crop
    return (*dims[:2], height, width)


def _data_layer_tops(layer: Layer, given: Mapping[str, Shape], first: Shape | None) -> list[Shape]:
    if layer.type == "HDF5Data" and not all(top in given for top in layer.top):
        return hdf5_source.top_shapes(layer)   # the files say; Caffe reads them at set-up too
    tops: list[Shape] = []
    for index, top in enumerate(layer.top):
        if top in given:
            tops.append(_as_read(layer, given[top]))
        elif index == 1 and layer.type in ("Data", "ImageData"):
            tops.append(tops[0][:1])
        elif first is not None or tops:
            base = first if first is not None else tops[0]
            tops.append((base[0], 1, *base[2:]))
        else:
            raise RuleError(f"digitslite cannot know the shape of '{top}' before reading the dataset: "
                            f"pass it (--input-shape {top}=N,C,H,W or C,H,W on the command line)")
    return tops


# ----------------------------------------------------------------------------------------------
# Inference over a net


@dataclass(frozen=True)
class LayerShapes:
    """The bottom and top shapes of one layer, as Caffe's SetUp would see them."""

    name: str
    type: str
    bottoms: list[Shape]
    tops: list[Shape]


def _where(source_map: SourceMap | None, layer: Layer) -> str:
    return f"{source_map.where(layer.name)}: " if source_map is not None else ""


def _normalise(net: caffe_pb2.NetParameter,
               input_shapes: Mapping[str, Sequence[int]] | None) -> dict[str, Shape]:
    given = {name: tuple(int(d) for d in dims) for name, dims in (input_shapes or {}).items()}
    known = input_tops(net)
    for name, dims in given.items():
        if name not in known:
            raise ShapeError(f"an input shape is given for '{name}', which no Input or data layer of net "
                             f"'{net.name}' produces; its inputs are: {', '.join(known) or 'none'}")
        if not dims or any(d <= 0 for d in dims):
            raise ShapeError(f"the input shape {list(dims)} for '{name}' must be positive sizes, "
                             "e.g. 1,3,500,500")
    return given


def refuse_unknown_types(net: caffe_pb2.NetParameter, source_map: SourceMap | None = None) -> None:
    """Refuse the first layer whose type digitslite does not run, naming the fork or the alternative
    for the types it knows of, and the supported types otherwise."""
    for layer in net.layer:
        if layer.type in REFUSED_TYPES:
            raise ShapeError(f"{_where(source_map, layer)}layer '{layer.name}' has type '{layer.type}', "
                             f"which digitslite does not run: {REFUSED_TYPES[layer.type]}")
        if layer.type not in LAYER_TYPES:
            supported = ", ".join(sorted(LAYER_TYPES))
            raise ShapeError(f"{_where(source_map, layer)}layer '{layer.name}' has type '{layer.type}', "
                             f"which digitslite does not support (supported: {supported})")


def infer_shapes(net: caffe_pb2.NetParameter, input_shapes: Mapping[str, Sequence[int]] | None = None,
                 source_map: SourceMap | None = None) -> list[LayerShapes]:
    """Bottom and top shapes of every layer of a filtered net, one entry per layer in order.

    Raises ShapeError at the first layer of an unsupported type (checked before any shape, since
    no input shape can fix it) or the first layer that breaks Caffe's rules.
    """
    refuse_unknown_types(net, source_map)
    given = _normalise(net, input_shapes)
    shapes: dict[str, Shape] = {}
    first_data: Shape | None = None
    result = []
    for layer in net.layer:
        try:
            missing = [name for name in layer.bottom if name not in shapes]
            if missing:
                raise RuleError(f"bottom '{missing[0]}' is not produced by any earlier layer; "
                                "produce it first or fix the name")
            bottoms = [shapes[name] for name in layer.bottom]
            if layer.type == "Input":
                tops = _input_layer_tops(layer, given)
            elif is_source(layer):
                tops = _data_layer_tops(layer, given, first_data)
            elif LAYER_TYPES[layer.type].tops is None:
                raise RuleError(f"digitslite runs a {layer.type} layer only as a data source (no "
                                "bottoms); replace this one with built-in layers")
            else:
                tops = LAYER_TYPES[layer.type].tops(layer, bottoms)
            if len(tops) != len(layer.top):
                raise RuleError(f"lists {len(layer.top)} top(s) but makes {len(tops)}; list {len(tops)}")
        except RuleError as exc:
            where = _where(source_map, layer)
            raise ShapeError(f"{where}layer '{layer.name}' ({layer.type}): {exc}") from None
        if is_source(layer) and first_data is None and tops:
            first_data = tops[0]
        shapes.update(zip(layer.top, tops, strict=True))
        result.append(LayerShapes(name=layer.name, type=layer.type, bottoms=bottoms, tops=tops))
    return result


def blob_shapes(net: caffe_pb2.NetParameter, input_shapes: Mapping[str, Sequence[int]] | None = None,
                source_map: SourceMap | None = None) -> dict[str, Shape]:
    """The final shape of every top of the net, in order of first appearance."""
    shapes: dict[str, Shape] = {}
    for layer, entry in zip(net.layer, infer_shapes(net, input_shapes, source_map), strict=True):
        shapes.update(zip(layer.top, entry.tops, strict=True))
    return shapes
