"""docs/LAYERS.md, generated from the layer records: the supported layer types, what each does,
the parameter messages it reads with their fields and Caffe's defaults.

`python -m digitslite.caffe.layerdoc` rewrites the file; a test checks the committed one matches.
"""
from pathlib import Path

from google.protobuf.descriptor import FieldDescriptor

from digitslite.caffe import caffe_pb2
from digitslite.caffe.layers import LAYER_TYPES, Coord, LayerType, Source
from digitslite.caffe.layers.record import no_blobs
from digitslite.fileio import write_atomically

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "LAYERS.md"

_INTRO = """# Supported layer types

Generated from the layer records in `digitslite/caffe/layers/` by
`python -m digitslite.caffe.layerdoc`; do not edit by hand (a test compares the two).
Each type follows BVLC Caffe's semantics. A layer type is its record in
`digitslite/caffe/layers/<family>.py` plus its implementation in
`digitslite/engine/layers/<family>.py`.

Coordinate map: how `digitslite net crops` and Crop offsets follow the type (identity, window,
transposed window, crop, or undefined). Blobs: the learned or stored parameter blobs.
"""


def _default(field: FieldDescriptor) -> str:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values_by_number[field.default_value].name
    if field.type == FieldDescriptor.TYPE_BOOL:
        return str(field.default_value).lower()
    if field.type == FieldDescriptor.TYPE_STRING:
        return f'"{field.default_value}"'
    return str(field.default_value)


def _field(field: FieldDescriptor) -> str:
    if field.is_repeated:
        return f"`{field.name}` (repeated)"
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return f"`{field.name}` {{ }}"
    if field.has_default_value:
        return f"`{field.name}` = {_default(field)}"
    return f"`{field.name}`"


def _message_fields(name: str) -> str:
    message = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name[name].message_type
    return ", ".join(_field(field) for field in message.fields) or "(no fields)"


def _blobs(record: LayerType) -> str:
    return "" if record.blobs is no_blobs else "yes"


def _row(record: LayerType) -> str:
    params = ", ".join(f"`{name}`" for name in record.params)
    notes = []
    if record.source is not Source.NONE:
        notes.append("net input" if record.source is Source.INPUT else "reads a dataset")
    if record.loss:
        notes.append("loss (loss_weight 1)")
    coord = record.coord.value if record.coord is not Coord.NONE else ""
    return (f"| {record.name} | {record.summary} | {params} | {_blobs(record)} | {coord} | "
            f"{'; '.join(notes)} |")


def render() -> str:
    """The whole of docs/LAYERS.md."""
    lines = [_INTRO]
    families: dict[str, list[LayerType]] = {}
    for record in LAYER_TYPES.values():
        families.setdefault(record.family, []).append(record)
    for family, records in families.items():
        lines += [f"## {family}", "", "| Type | What it does | Parameters | Blobs | Coordinate map | Notes |",
                  "|---|---|---|---|---|---|", *map(_row, records), ""]
    messages = sorted({name for record in LAYER_TYPES.values() for name in record.params})
    lines += ["## Parameter messages", "",
              "The fields of each message, with Caffe's default where it has one.", ""]
    for name in messages:
        users = ", ".join(sorted(r.name for r in LAYER_TYPES.values() if name in r.params))
        lines += [f"### {name}", "", f"Read by: {users}.", "", _message_fields(name), ""]
    return "\n".join(lines)


def write(path: Path = DOC_PATH) -> None:
    write_atomically(path, render().encode())


if __name__ == "__main__":
    write()
    print(f"wrote {DOC_PATH} ({len(LAYER_TYPES)} layer types)")
