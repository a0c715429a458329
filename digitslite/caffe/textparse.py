"""Protobuf text format -> message, where every failure is a one-line PrototxtError that names
file:line:column, the offending token and a fix, instead of protobuf's bare ParseError."""
import difflib
import re

from google.protobuf import text_format
from google.protobuf.message import Message

from digitslite.caffe import caffe_pb2
from digitslite.caffe.sourcemap import PrototxtError, TextScan, Token, scan_text
from digitslite.caffe.upgrade import V1_TYPE_NAMES

_POOL = caffe_pb2.DESCRIPTOR.pool
_EMPTY_HINTS = {
    "NetParameter": 'write the network as `name: "..."` followed by `layer { ... }` blocks',
    "SolverParameter": 'write the solver settings, e.g. `net: "train_val.prototxt"` and `base_lr: 0.01`',
}
_OTHER_KIND = {  # message parsed -> (a message the text may have been meant for, what that file is called)
    "NetParameter": (caffe_pb2.SolverParameter, "a solver file, not a network definition"),
    "SolverParameter": (caffe_pb2.NetParameter, "a network definition, not a solver file"),
}
_LEGACY_FIELD_HINTS = {
    "blobs_lr": "`blobs_lr` belongs to the old `layers { }` format; write `param { lr_mult: ... }` instead",
    "weight_decay": "`weight_decay` belongs to the old `layers { }` format; write `param { decay_mult: ... }`"
                    " instead",
}
_GENERIC_HINT = "check the syntax here: fields are written `name: value` and blocks `name { ... }`"
_MESSAGE_START = re.compile(
    r"(Message type|Enum type|Couldn't parse|Value out of range|Expected|String missing|Integer|Invalid)")


def parse_text(text: str, source: str, message: Message) -> TextScan:
    """Parse `text` into `message` (cleared first); returns the token scan with the source map.

    Raises PrototxtError for empty text and for every syntax or schema error.
    """
    scan = scan_text(text, source)
    if not scan.tokens:
        kind = message.DESCRIPTOR.name
        raise PrototxtError("holds no definition: the file is empty or only comments", path=source,
                            hint=_EMPTY_HINTS.get(kind, "write its fields"))
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise located_parse_error(exc, text, scan, message) from None
    return scan


def located_parse_error(exc: text_format.ParseError, text: str, scan: TextScan,
                        message: Message) -> PrototxtError:
    """Explain protobuf's ParseError at its place, with the token there and how to fix it."""
    path = scan.source_map.path
    line, column = exc.GetLine(), exc.GetColumn()
    body = _message_body(str(exc), text, line)
    if line is None or line < 1 or column is None or column < 1:
        return PrototxtError(body.rstrip("."), path=path, hint=_GENERIC_HINT)
    index = scan.token_index_at(line, column)
    token = scan.tokens[index] if index is not None else None
    stray = next((t for t in scan.stray_closers if (t.line, t.column) == (line, column)), None)
    if stray is not None:
        return PrototxtError(f"'{stray.text}' closes no open block", path=path, line=line, column=column,
                             token=stray.text, hint=f"remove this '{stray.text}' or add the block it closes")
    if not body.startswith("String missing") and _at_end(scan, line, column):
        return _end_of_file_error(scan)
    problem, hint = _explain(body, scan, index, message)
    return PrototxtError(problem, path=path, line=line, column=column,
                         token=token.text if token is not None else None, hint=hint)


def _message_body(raw: str, text: str, line: int | None) -> str:
    """protobuf's message without its `L:C : 'source line': ` prefix."""
    body = re.sub(r"^\d+:\d+ : ", "", raw)
    lines = text.splitlines()
    candidates = [lines[line - 1]] if line is not None and 0 < line <= len(lines) else []
    for candidate in [*candidates, ""]:
        if body.startswith(f"'{candidate}': "):
            return body[len(candidate) + 4:]
    match = _MESSAGE_START.search(body)
    return body[match.start():] if match else body


def _at_end(scan: TextScan, line: int, column: int) -> bool:
    last = scan.tokens[-1]
    return (line, column) >= (last.line, last.column)


def _end_of_file_error(scan: TextScan) -> PrototxtError:
    last = scan.tokens[-1]
    line, column = last.end
    path = scan.source_map.path
    if scan.unclosed:
        opener = scan.unclosed[-1]
        return PrototxtError(
            f"the file ends inside the '{opener.text}' block opened at {opener.line}:{opener.column}",
            path=path, line=line, column=column, token=last.text,
            hint=f"add the missing '}}' ({len(scan.unclosed)} block(s) left open); the file may be truncated")
    return PrototxtError("the file ends in the middle of a field", path=path, line=line, column=column,
                         token=last.text, hint="complete the last field or remove it")


def _explain(body: str, scan: TextScan, index: int | None, message: Message) -> tuple[str, str]:
    """(what is wrong, how to fix it) for one protobuf text-format message."""
    if match := re.match(r'Message type "([\w.]+)" has no field named "(\w+)"', body):
        return _unknown_field(match.group(1), match.group(2), scan, index, message)
    if match := re.match(r'Enum type "([\w.]+)" has no value named "?([^".]*)"?', body):
        return _unknown_enum_value(match.group(1), match.group(2))
    if match := re.match(r'Enum type "([\w.]+)" has no value with number (-?\d+)', body):
        return (f"{match.group(2)} is not a value of {_short(match.group(1))}",
                f"use one of {_enum_choices(match.group(1))}")
    if match := re.match(r'Message type "([\w.]+)" should not have multiple "(\w+)" fields', body):
        return (f"'{match.group(2)}' is given more than once in {_short(match.group(1))}",
                "it holds a single value: keep one")
    if match := re.match(r"Expected string but found: '(.*)'", body):
        return _expected_string(match.group(1))
    if match := re.match(r"Couldn't parse integer: (.*)", body):
        return f"'{match.group(1)}' is not a whole number", "this field takes an integer such as 3"
    if match := re.match(r"Couldn't parse float: (.*)", body):
        return f"'{match.group(1)}' is not a number", "this field takes a number such as 0.01"
    if match := re.match(r"(?:Value|Integer) out of range: (.*)", body):
        return (f"{match.group(1)} is out of range for this field",
                "use a smaller value (fields such as num_output and kernel_size cannot be negative)")
    if body.startswith('Expected "true" or "false"'):
        return "expected true or false", "write true or false"
    if body.startswith("String missing ending quote"):
        return "the string has no closing quote", "close it with the same quote on the same line"
    return body.rstrip("."), _GENERIC_HINT


def _short(full_name: str) -> str:
    return full_name.removeprefix("caffe.")


def _unknown_field(message_name: str, field: str, scan: TextScan, index: int | None,
                   message: Message) -> tuple[str, str]:
    problem = f"unknown field '{field}' in {_short(message_name)}"
    enclosing: Token | None = scan.enclosing[index] if index is not None else None
    if field in ("layer", "layers") and enclosing is not None:
        return problem, (f"a '}}' is probably missing before this line: the '{enclosing.text}' block opened "
                         f"at {enclosing.line}:{enclosing.column} is still open")
    other = _OTHER_KIND.get(message.DESCRIPTOR.name)
    if enclosing is None and other is not None and field in other[0].DESCRIPTOR.fields_by_name:
        return problem, f"this looks like {other[1]}"
    if field in _LEGACY_FIELD_HINTS:
        return problem, _LEGACY_FIELD_HINTS[field]
    known = _POOL.FindMessageTypeByName(message_name).fields_by_name
    close = difflib.get_close_matches(field, known, n=1, cutoff=0.6)
    if close:
        return problem, f"did you mean '{close[0]}'?"
    return problem, f"remove it or check its spelling ({_short(message_name)} has no such field)"


def _unknown_enum_value(enum_name: str, value: str) -> tuple[str, str]:
    problem = f"'{value}' is not a value of {_short(enum_name)}"
    if enum_name == "caffe.V1LayerParameter.LayerType":
        return problem, ("old `layers { }` blocks take an enum type such as CONVOLUTION; or write the block "
                         f'as `layer {{ type: "{value}" ... }}`')
    names = _POOL.FindEnumTypeByName(enum_name).values_by_name
    close = difflib.get_close_matches(value.upper(), names, n=1, cutoff=0.5)
    suggestion = f"did you mean {close[0]}? " if close else ""
    return problem, f"{suggestion}use one of {_enum_choices(enum_name)}"


def _enum_choices(enum_name: str) -> str:
    return ", ".join(_POOL.FindEnumTypeByName(enum_name).values_by_name)


def _expected_string(found: str) -> tuple[str, str]:
    if V1_TYPE_NAMES.get(found):
        return (f"expected a quoted string, found {found}",
                f'write type: "{V1_TYPE_NAMES[found]}" (enum names such as {found} belong to the old '
                "`layers { }` format)")
    return "expected a quoted string", 'put the value in quotes, e.g. name: "conv1"'
