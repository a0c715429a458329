"""Where things sit in prototxt text, and the located error type.

Protobuf forgets positions once a file is parsed, yet a bad bottom name or an impossible shape is
found long after parsing. A light token pass over the text (strings and # comments skipped)
remembers where each top-level `layer {` / `layers {` block starts and where its direct fields are,
so such later errors can still say `file:line:column`.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from google.protobuf import text_encoding

from digitslite.errors import UserError

_LAYER_BLOCKS = ("layer", "layers")
_OPENERS = {"{": "}", "<": ">"}
_CLOSERS = {"}", ">"}
_TOKEN_SHOWN_CHARS = 40


class PrototxtError(UserError):
    """A problem in a network, solver or weights file, with its place and the fix.

    `line` and `column` are 1-based and None where the place is unknown (a binary file, a whole-file
    problem); `token` is the text found there. str() is one line:
    `<path>:<line>:<column>: <what is wrong> (near '<token>'); <fix hint>`.
    """

    def __init__(self, problem: str, *, path: str, line: int | None = None, column: int | None = None,
                 token: str | None = None, hint: str | None = None) -> None:
        self.problem = problem
        self.path = path
        self.line = line
        self.column = column
        self.token = token
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        place = self.path
        if self.line is not None:
            place += f":{self.line}" if self.column is None else f":{self.line}:{self.column}"
        text = f"{place}: {self.problem}"
        if self.token:
            text += f" (near '{_shown_token(self.token)}')"
        if self.hint:
            text += f"; {self.hint}"
        return re.sub(r"\s*[\r\n]+\s*", " ", text)

    def __reduce__(self):
        fields = {"path": self.path, "line": self.line, "column": self.column, "token": self.token,
                  "hint": self.hint}
        return _rebuild_error, (type(self), self.problem, fields)


def _rebuild_error(cls: type[PrototxtError], problem: str, fields: dict) -> PrototxtError:
    return cls(problem, **fields)


def _shown_token(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        token = token[1:-1]
    return token if len(token) <= _TOKEN_SHOWN_CHARS else token[:_TOKEN_SHOWN_CHARS] + "..."


class FieldPlace(NamedTuple):
    """One `key: value` (or `key { ... }`, value "") written directly in a block; 1-based place of its key."""

    key: str
    value: str
    line: int
    column: int


@dataclass
class SourceMap:
    """Where each layer starts in the text, for errors found after parsing (shapes, topology).

    A name used by several layers (a train and a test data layer) maps to its first block. Binary
    files have no places: the maps are empty and `where` gives just the path.
    """

    path: str
    layer_starts: dict[str, tuple[int, int]] = field(default_factory=dict)
    layer_fields: dict[str, list[FieldPlace]] = field(default_factory=dict)
    top_fields: list[FieldPlace] = field(default_factory=list)

    def locate(self, layer_name: str, key: str | None = None, value: str | None = None
               ) -> tuple[int, int] | None:
        """(line, column) of the layer's block, or of its first `key` (with that `value`) if known."""
        if key is not None:
            for place in self.layer_fields.get(layer_name, ()):
                if place.key == key and (value is None or place.value == value):
                    return place.line, place.column
        return self.layer_starts.get(layer_name)

    def locate_top(self, key: str) -> tuple[int, int] | None:
        """(line, column) of the first top-level `key:` of the file, if it is written there."""
        for place in self.top_fields:
            if place.key == key:
                return place.line, place.column
        return None

    def where(self, layer_name: str, key: str | None = None, value: str | None = None) -> str:
        """"path:line:col" of the layer (or of one of its fields), or just "path" when unknown."""
        place = self.locate(layer_name, key, value)
        return self.path if place is None else f"{self.path}:{place[0]}:{place[1]}"

    def error(self, layer_name: str, problem: str, hint: str, *, key: str | None = None,
              value: str | None = None, token: str | None = None) -> PrototxtError:
        """A PrototxtError placed at the layer (or at its `key: value` field when that is known)."""
        line, column = self.locate(layer_name, key, value) or (None, None)
        return PrototxtError(problem, path=self.path, line=line, column=column, token=token, hint=hint)

    def top_error(self, key: str, problem: str, hint: str, *, token: str | None = None) -> PrototxtError:
        """A PrototxtError placed at the file's top-level `key:` field when that is known."""
        line, column = self.locate_top(key) or (None, None)
        return PrototxtError(problem, path=self.path, line=line, column=column, token=token, hint=hint)


def source_map_or_default(source_map: SourceMap | None, net_name: str) -> SourceMap:
    """The given map, or a place-less one that names the net, for nets built in memory."""
    if source_map is not None:
        return source_map
    return SourceMap(path=f"net '{net_name}'" if net_name else "<net>")


class Token(NamedTuple):
    """A significant token of protobuf text format (no blanks, no comments); 1-based place."""

    kind: str
    text: str
    line: int
    column: int

    @property
    def end(self) -> tuple[int, int]:
        """(line, column) just after the token (tokens never span lines)."""
        return self.line, self.column + len(self.text)


_TOKEN = re.compile(r"""
    (?P<newline>\n)
  | (?P<blank>[ \t\r\f\v]+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?)
  | (?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\w*)
  | (?P<word>[A-Za-z_]\w*)
  | (?P<symbol>.)
""", re.VERBOSE)


def tokenize(text: str) -> list[Token]:
    """The significant tokens of `text` with their places; never fails, whatever the text."""
    tokens: list[Token] = []
    line, line_start = 1, 0
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "newline":
            line, line_start = line + 1, match.end()
        elif kind not in ("blank", "comment"):
            tokens.append(Token(kind, match.group(), line, match.start() - line_start + 1))
    return tokens


def unquote(token_text: str) -> str:
    """The value of a string token (quotes removed, C escapes decoded); other tokens as written."""
    if len(token_text) < 1 or token_text[0] not in "'\"":
        return token_text
    body = token_text[1:-1] if len(token_text) >= 2 and token_text[-1] == token_text[0] else token_text[1:]
    if "\\" not in body:
        return body
    try:
        return text_encoding.CUnescape(body).decode("utf-8", errors="replace")
    except ValueError:
        return body


@dataclass
class _LayerBlock:
    start: Token
    name: str | None = None
    v0_name: str | None = None
    fields: list[FieldPlace] = field(default_factory=list)


@dataclass
class _OpenBlock:
    key: Token
    layer: _LayerBlock | None = None


@dataclass
class TextScan:
    """Everything one token pass learns: the source map, plus what parse errors are explained by."""

    source_map: SourceMap
    tokens: list[Token]
    unclosed: list[Token]            # keys of the blocks still open at the end, outermost first
    stray_closers: list[Token]       # '}' / '>' that close no block
    enclosing: list[Token | None]    # per token: the key of the innermost block it sits in

    def token_index_at(self, line: int, column: int) -> int | None:
        """Index of the token covering (line, column), else of the first one after it."""
        for index, token in enumerate(self.tokens):
            if (line, column) < token.end:
                return index
        return None


def scan_text(text: str, path: str) -> TextScan:
    """One pass over `text`: layer starts and fields, top-level fields, unbalanced braces."""
    tokens = tokenize(text)
    source_map = SourceMap(path=path)
    stack: list[_OpenBlock] = []
    stray: list[Token] = []
    enclosing: list[Token | None] = []
    for index, token in enumerate(tokens):
        enclosing.append(stack[-1].key if stack else None)
        if token.kind != "symbol" and token.kind != "word":
            continue
        if token.text in _OPENERS:
            key = _block_key(tokens, index)
            if key.kind == "word":
                _record_field(source_map, stack, FieldPlace(key.text, "", key.line, key.column))
            is_layer = not stack and key.text in _LAYER_BLOCKS
            stack.append(_OpenBlock(key, _LayerBlock(key) if is_layer else None))
        elif token.text in _CLOSERS:
            if not stack:
                stray.append(token)
            elif (closed := stack.pop()).layer is not None:
                _record_layer(source_map, closed.layer)
        elif token.kind == "word":
            for value in _field_values(tokens, index):
                _record_field(source_map, stack, FieldPlace(token.text, unquote(value.text), token.line,
                                                            token.column))
    for block in stack:
        if block.layer is not None:
            _record_layer(source_map, block.layer)
    return TextScan(source_map, tokens, [block.key for block in stack], stray, enclosing)


def _block_key(tokens: list[Token], opener_index: int) -> Token:
    """The field name before a '{' (`key {` or `key: {`); the brace itself when there is none."""
    before = opener_index - 1
    if before >= 0 and tokens[before].text == ":":
        before -= 1
    if before >= 0 and tokens[before].kind == "word":
        return tokens[before]
    return tokens[opener_index]


def _field_values(tokens: list[Token], key_index: int) -> Iterable[Token]:
    """The value tokens of `key: value` or `key: [v1, v2]` starting at a word; none if not a field."""
    if key_index + 2 >= len(tokens) or tokens[key_index + 1].text != ":":
        return []
    first = tokens[key_index + 2]
    if first.kind in ("string", "number", "word"):
        return [first]
    if first.text != "[":
        return []
    values = []
    for token in tokens[key_index + 3:]:
        if token.text == "]":
            break
        if token.kind in ("string", "number", "word"):
            values.append(token)
    return values


def _record_field(source_map: SourceMap, stack: list[_OpenBlock], place: FieldPlace) -> None:
    if not stack:
        source_map.top_fields.append(place)
        return
    layer = stack[0].layer
    if layer is None:
        return
    if len(stack) == 1:
        layer.fields.append(place)
        if place.key == "name" and layer.name is None:
            layer.name = place.value
    elif len(stack) == 2 and stack[1].key.text == "layer":    # a V0 layer nested in `layers { layer {`
        layer.fields.append(place)
        if place.key == "name" and layer.v0_name is None:
            layer.v0_name = place.value


def _record_layer(source_map: SourceMap, layer: _LayerBlock) -> None:
    name = layer.name if layer.name is not None else layer.v0_name
    if name is None or name in source_map.layer_starts:
        return
    source_map.layer_starts[name] = (layer.start.line, layer.start.column)
    source_map.layer_fields[name] = layer.fields
