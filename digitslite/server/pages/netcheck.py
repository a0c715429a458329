"""The custom-network editor's live `net check`: parse errors with their line, the shape of every
blob, the stride / offset table and the Crop offsets, and the one-click fix that writes the derived
offsets into the text itself (comments and layout kept).

The template field {{num_classes}} is replaced by the class count padded with spaces to its own
length, so every column of the text stays where the editor shows it.
"""
import re
from fractions import Fraction
from typing import Any

from digitslite.caffe import caffe_pb2
from digitslite.caffe.coordmap import crop_report, fill_crop_offsets, stride_table
from digitslite.caffe.prototxt import check_topology, filter_net, parse_net_located
from digitslite.caffe.shapes import blob_shapes, input_tops, is_source
from digitslite.caffe.sourcemap import PrototxtError, SourceMap, Token, tokenize
from digitslite.errors import UserError
from digitslite.networks import fill_template

SOURCE = "network"
DEFAULT_IMAGE_SHAPE = (3, 224, 224)  # C, H, W for the check until a dataset is chosen
_PLACE = re.compile(rf"^{SOURCE}(?::(\d+))?(?::(\d+))?: ")


def fill_classes(text: str, num_classes: int) -> str:
    """The template fields filled in, padded to their width so error columns match the editor."""
    return fill_template(text, num_classes, pad=True)


def _error(exc: UserError) -> dict[str, Any]:
    """The problem with its line and column, read from the exception or from its message."""
    message = str(exc)
    match = _PLACE.match(message)
    line = getattr(exc, "line", None) or (int(match[1]) if match and match[1] else None)
    column = getattr(exc, "column", None) or (int(match[2]) if match and match[2] else None)
    return {"message": message[match.end():] if match else message, "line": line, "column": column}


def _number(value: Fraction) -> int | float:
    return int(value) if value.denominator == 1 else round(float(value), 4)


def _values(values: tuple | None) -> list | None:
    return None if values is None else [_number(Fraction(value)) for value in values]


def _given_shapes(net: caffe_pb2.NetParameter, image_shape: tuple[int, int, int]) -> dict[str, tuple]:
    """The image shape for the first data layer's top (an Input layer declares its own)."""
    tops = input_tops(net)
    first = next((layer for layer in net.layer if is_source(layer)), None)
    if not tops or first is None or first.type == "Input":
        return {}
    return {tops[0]: image_shape}


def _strides(net: caffe_pb2.NetParameter, source_map: SourceMap) -> dict[str, Any]:
    try:
        table = stride_table(net, source_map=source_map)
    except UserError as exc:
        return {"rows": [], "crop_offset": None, "note": _error(exc)["message"]}
    rows = [{"layer": row.layer, "type": row.type, "stride": _values(row.stride), "pad": _values(row.pad),
             "kernel": _values(row.kernel), "scale": _values(row.scale),
             "cumulative_scale": _values(row.cumulative_scale), "offset": _values(row.offset),
             "cumulative_offset": _values(row.cumulative_offset)} for row in table.rows]
    return {"rows": rows, "crop_offset": table.crop_offset, "note": None}


def check_network(text: str, num_classes: int, image_shape: tuple[int, int, int] | None) -> dict[str, Any]:
    """Everything the editor shows. `error` is the first problem (None when the TRAIN net builds);
    each part is filled when it could be worked out, so a wrong Crop offset still shows its fix.
    Without a dataset's image shape, data layers read DEFAULT_IMAGE_SHAPE images."""
    result: dict[str, Any] = {"error": None, "layers": 0, "blobs": [], "strides": None, "crops": [],
                              "image_shape": list(image_shape or DEFAULT_IMAGE_SHAPE),
                              "from_dataset": image_shape is not None}
    try:
        net, source_map = parse_net_located(fill_classes(text, num_classes), SOURCE)
        train = filter_net(net, phase="train", source_map=source_map)
        check_topology(train, source_map)
    except UserError as exc:
        result["error"] = _error(exc)
        return result
    result["layers"] = len(train.layer)
    try:
        shapes = blob_shapes(train, _given_shapes(train, image_shape or DEFAULT_IMAGE_SHAPE), source_map)
        result["blobs"] = [{"name": name, "shape": list(shape)} for name, shape in shapes.items()]
    except UserError as exc:
        result["error"] = _error(exc)
    try:
        result["crops"] = [{"layer": check.layer, "written": check.written, "derived": check.derived,
                            "ok": check.ok} for check in crop_report(net, source_map)]
        # Training fills in missing offsets (never wrong ones): the table shows the net as it trains.
        result["strides"] = _strides(fill_crop_offsets(net, source_map=source_map), source_map)
    except UserError as exc:
        result["error"] = result["error"] or _error(exc)
    return result


# --- the Crop offset fix ------------------------------------------------------------------------

class _Text:
    """Positions of the text by (line, column), and edits applied back to front."""

    def __init__(self, text: str):
        self.text = text
        self.starts = [0] + [match.end() for match in re.finditer("\n", text)]
        self.edits: list[tuple[int, int, str]] = []

    def offset(self, token: Token) -> int:
        return self.starts[token.line - 1] + token.column - 1

    def end(self, token: Token) -> int:
        return self.offset(token) + len(token.text)

    def indent_of(self, token: Token) -> str:
        line = self.text[self.starts[token.line - 1]:]
        return line[:len(line) - len(line.lstrip(" \t"))]

    def alone_on_line(self, start: int, end: int) -> tuple[int, int] | None:
        """The whole line (newline included) when nothing but blanks surrounds [start, end)."""
        line_start = self.text.rfind("\n", 0, start) + 1
        line_end = self.text.find("\n", end)
        line_end = len(self.text) if line_end < 0 else line_end + 1
        if self.text[line_start:start].strip() or self.text[end:line_end].strip():
            return None
        return line_start, line_end

    def applied(self) -> str:
        text = self.text
        for start, end, replacement in sorted(self.edits, reverse=True):
            text = text[:start] + replacement + text[end:]
        return text


def _block_end(tokens: list[Token], opener: int) -> int:
    depth = 0
    for index in range(opener, len(tokens)):
        depth += {"{": 1, "}": -1}.get(tokens[index].text, 0)
        if depth == 0:
            return index
    return len(tokens) - 1


def _direct_fields(tokens: list[Token], opener: int, closer: int) -> list[int]:
    """Indices of the words that are direct fields of the block between `opener` and `closer`."""
    found, depth = [], 0
    for index in range(opener + 1, closer):
        token = tokens[index]
        depth += {"{": 1, "}": -1}.get(token.text, 0)
        follows = tokens[index + 1].text if index + 1 < closer else ""
        if depth == 0 and token.kind == "word" and follows in (":", "{"):
            found.append(index)
    return found


def _field_end(tokens: list[Token], key: int) -> int:
    """Index of the last token of `key: value` or `key: [v, ...]`."""
    value = key + 2
    if tokens[value].text != "[":
        return value
    while tokens[value].text != "]":
        value += 1
    return value


def _fix_layer(text: _Text, tokens: list[Token], layer_start: int, offsets: list[int]) -> None:
    opener = next(i for i in range(layer_start, len(tokens)) if tokens[i].text == "{")
    closer = _block_end(tokens, opener)
    crop = next((i for i in _direct_fields(tokens, opener, closer) if tokens[i].text == "crop_param"), None)
    if crop is None:
        field = f"crop_param {{ {' '.join(f'offset: {value}' for value in offsets)} }}"
        inner = _direct_fields(tokens, opener, closer)
        indent = text.indent_of(tokens[inner[0]]) if inner else "  "
        position = text.offset(tokens[closer])
        if text.alone_on_line(position, position + 1):
            line_start = text.starts[tokens[closer].line - 1]
            text.edits.append((line_start, line_start, f"{indent}{field}\n"))
        else:
            text.edits.append((position, position, f" {field} "))
        return
    crop_open = crop + 1 if tokens[crop + 1].text == "{" else crop + 2
    crop_close = _block_end(tokens, crop_open)
    written = [i for i in _direct_fields(tokens, crop_open, crop_close) if tokens[i].text == "offset"]
    multiline = tokens[crop_close].line > tokens[crop_open].line
    indent = text.indent_of(tokens[crop]) + "  "
    separator = f"\n{indent}" if multiline else " "
    joined = separator.join(f"offset: {value}" for value in offsets)
    if not written:
        position = text.end(tokens[crop_open])
        text.edits.append((position, position, separator + joined))
        return
    for number, key in enumerate(written):
        start, end = text.offset(tokens[key]), text.end(tokens[_field_end(tokens, key)])
        if number == 0:
            text.edits.append((start, end, joined))
        else:
            whole_line = text.alone_on_line(start, end)
            blank_before = start > 0 and text.text[start - 1] == " "
            text.edits.append((*(whole_line or (start - blank_before, end)), ""))


def fix_crop_offsets(text: str, num_classes: int = 2) -> str:
    """`text` with every missing or wrong Crop offset replaced by the derived one, nothing else changed.

    Raises UserError when the net does not parse or the edit does not give the derived offsets.
    """
    filled = fill_classes(text, num_classes)
    net, source_map = parse_net_located(filled, SOURCE)
    tokens = tokenize(filled)
    edited = _Text(text)
    for check in crop_report(net, source_map):
        if check.written is not None and check.ok:
            continue
        line, column = source_map.layer_starts[check.layer]
        start = next(i for i, token in enumerate(tokens) if (token.line, token.column) == (line, column))
        _fix_layer(edited, tokens, start, check.derived)
    fixed = edited.applied()
    again, again_map = parse_net_located(fill_classes(fixed, num_classes), SOURCE)
    if not all(check.ok and check.written is not None for check in crop_report(again, again_map)):
        raise PrototxtError("the derived Crop offsets could not be written into this text", path=SOURCE,
                            hint="set each Crop layer's offset by hand to the derived value shown")
    return fixed
