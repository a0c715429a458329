"""The prototxt text editor behind the fixes `net check` offers, for the command line and the
custom-network editor alike: each fix is written into the text itself, so comments, layout and
template fields stay.

- Crop offsets: each missing or wrong offset is edited in place (an `offset:` replaced, or a
  `crop_param { ... }` added at the layer's indentation); the result is parsed again and must
  give the derived offsets.
- Class counts: the num_output of the named layers is replaced (by a number or {{num_classes}}).
"""
import re

from digitslite.caffe.coordmap import crop_report
from digitslite.caffe.prototxt import parse_net_located
from digitslite.caffe.sourcemap import PrototxtError, SourceMap, Token, tokenize
from digitslite.caffe.template import NUM_CLASSES_FIELD, fill_template


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


def fix_crop_offsets(text: str, source: str, num_classes: int | None = None) -> tuple[str, int]:
    """(`text` with every missing or wrong Crop offset replaced by the derived one, nothing else
    changed; the number of offsets written). Template fields are filled with `num_classes` to parse.

    Raises UserError when the net does not parse or the edit does not give the derived offsets.
    """
    filled = fill_template(text, num_classes, source)
    net, source_map = parse_net_located(filled, source)
    tokens = tokenize(filled)
    edited = _Text(text)
    changed = 0
    for check in crop_report(net, source_map):
        if check.derived is None or (check.written is not None and check.ok):
            continue
        _fix_layer(edited, tokens, _layer_start(tokens, source_map, check.layer), check.derived)
        changed += 1
    fixed = edited.applied()
    again, again_map = parse_net_located(fill_template(fixed, num_classes, source), source)
    if not all(check.derived is None or (check.ok and check.written is not None)
               for check in crop_report(again, again_map)):
        raise PrototxtError("the derived Crop offsets could not be written into this text", path=source,
                            hint="set each Crop layer's offset by hand to the derived value shown")
    return fixed, changed


def _layer_start(tokens: list[Token], source_map: SourceMap, layer: str) -> int:
    """Index of the first token of the layer's block."""
    line, column = source_map.layer_starts[layer]
    return next(i for i, token in enumerate(tokens) if (token.line, token.column) == (line, column))


def set_class_count(text: str, source: str, layers: list[str], old: int, value: str,
                    num_classes: int | None = None) -> str:
    """`text` with each of `layers` made to score `value` classes (a count or {{num_classes}}): its
    num_output, and its group where that is the old count too (a per-class bilinear upsampling)."""
    filled = fill_template(text, num_classes, source)
    _, source_map = parse_net_located(filled, source)
    tokens = tokenize(filled)
    edited = _Text(text)
    for layer in layers:
        opener = next(i for i in range(_layer_start(tokens, source_map, layer), len(tokens))
                      if tokens[i].text == "{")
        keys = [i for i in range(opener, _block_end(tokens, opener)) if tokens[i + 1].text == ":" and (
            tokens[i].text == "num_output" or (tokens[i].text == "group" and tokens[i + 2].text == str(old)))]
        if not any(tokens[key].text == "num_output" for key in keys):
            raise PrototxtError(f"layer '{layer}' writes no num_output to set", path=source,
                                hint=f"add num_output: {value} to its parameters")
        for key in keys:
            start = edited.offset(tokens[key + 2])
            written = NUM_CLASSES_FIELD if text.startswith(NUM_CLASSES_FIELD, start) else tokens[key + 2].text
            edited.edits.append((start, start + len(written), value))
    return edited.applied()
