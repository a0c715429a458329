"""Small checks every request value passes before anything is written, shared by all request readers.

A string must be storable everywhere a job's fields go (UTF-8 files, SQLite, logs, HTML): no lone
surrogate halves, no NUL or other control characters except tab and line breaks. A JSON body must
be shallow enough to walk without recursion limits.
"""
import re
from collections.abc import Mapping
from typing import Any

from digitslite.server.errors import ApiError

MAX_JSON_DEPTH = 32
# Whole numbers fit a signed 64-bit integer, as SQLite and file offsets need.
MAX_INT = 2**63 - 1
_WHOLE = re.compile(r"[+-]?[0-9]{1,19}")
_ALLOWED_CONTROLS = frozenset("\t\n\r")


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None."""
    for position, char in enumerate(value):
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF:
            return f"holds a lone surrogate (U+{code:04X}) at character {position}; send valid Unicode"
        if (code < 0x20 and char not in _ALLOWED_CONTROLS) or code == 0x7F:
            return f"holds the control character U+{code:04X} at character {position}; remove it"
    return None


def check_text(value: str, field: str) -> str:
    """`value`, or a 422 naming `field` when it cannot be stored as text."""
    problem = text_problem(value)
    if problem:
        raise ApiError(422, f"{field} {problem}", field)
    return value


def parse_whole(text: str) -> int | None:
    """An ASCII whole number within +-MAX_INT, or None (superscripts, other scripts' digits,
    underscores and huge numbers included, which int() would take or choke on)."""
    text = text.strip()
    if not _WHOLE.fullmatch(text):
        return None
    value = int(text)
    return value if -MAX_INT <= value <= MAX_INT else None


def check_json_value(value: Any, field: str | None = None, depth: int = 0) -> None:
    """Every string (keys too) of a decoded JSON value passes check_text; nesting is bounded."""
    if depth > MAX_JSON_DEPTH:
        raise ApiError(422, f"{field or 'the body'}: nested deeper than {MAX_JSON_DEPTH} levels", field)
    if isinstance(value, str):
        check_text(value, field or "the body")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            problem = text_problem(str(key))
            if problem:
                raise ApiError(422, f"a field name {problem}", field)
            check_json_value(item, f"{field}.{key}" if field else str(key), depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json_value(item, field, depth + 1)
