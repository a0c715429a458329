"""The field types of the API's requests: each reading rule written once, used by every schema and
shown in the OpenAPI document through pydantic's JSON Schema.

Values arrive typed (a JSON body) or as text (a form, a query string); every type here reads both.
A refusal here names no field: digitslite.server.schemas.body puts the field's name in front, so
that a message speaks of the field as the client named it. Text checks shared by every string
(length, and what a text may not hold) belong in `text`.
"""
import math
from typing import Annotated, Any

from annotated_types import Ge, Gt, Le, MaxLen
from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from digitslite.server.validators import MAX_INT, parse_whole, text_problem

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
SWEEP_NOTE = "one value, a list, or a comma-separated string: several make a sweep"


def invalid(value: Any, expected: str) -> PydanticCustomError:
    """`value` is not of the kind the field takes ("FIELD: VALUE is not EXPECTED")."""
    return PydanticCustomError("invalid", "{shown} is not {expected}",
                               {"shown": repr(value), "expected": expected})


def refused(problem: str) -> PydanticCustomError:
    """The value is of the right kind but not allowed ("FIELD PROBLEM")."""
    return PydanticCustomError("refused", "{problem}", {"problem": problem})


def _whole(value: Any) -> int:
    """ASCII digits only (no superscripts, other scripts' digits or underscores), within 64 bits."""
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        number = parse_whole(value)
    if number is None or not -MAX_INT <= number <= MAX_INT:
        raise invalid(value, f"a whole number of at most {len(str(MAX_INT))} digits")
    return number


def _storable(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise refused(problem)
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise invalid(value, "a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise invalid(value, "a number") from None
    if not math.isfinite(number):
        raise invalid(value, "a finite number")
    return number


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise invalid(value, "true or false")


def _items(value: Any) -> list[Any]:
    """One value, a list, or "a,b,c" (a form's way of giving several)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value) if isinstance(value, list) else [value]


def text(max_length: int = 10_000, description: str | None = None) -> Any:
    """A string of at most `max_length` characters that can be stored as text (server/validators)."""
    return Annotated[str, MaxLen(max_length), AfterValidator(_storable), Field(description=description)]


def whole(minimum: int | None = None, maximum: int | None = None, description: str | None = None) -> Any:
    """A whole number (5, 5.0 or "5"; never true or false) within the bounds."""
    bounds = [Ge(minimum)] if minimum is not None else []
    bounds += [Le(maximum)] if maximum is not None else []
    return Annotated[int, *bounds, BeforeValidator(_whole), Field(description=description)]


def number(minimum: float | None = None, maximum: float | None = None, *, positive: bool = False,
           description: str | None = None) -> Any:
    """A finite number within the bounds; `positive`: above 0."""
    bounds = [Gt(0)] if positive else []
    bounds += [Ge(minimum)] if minimum is not None else []
    bounds += [Le(maximum)] if maximum is not None else []
    return Annotated[float, *bounds, BeforeValidator(_number), Field(description=description)]


def sweep(item: Any, description: str = SWEEP_NOTE) -> Any:
    """Several values of `item` (a JSON list, or "a,b" in a form); one value is a list of one."""
    one = {"type": "integer" if item.__origin__ is int else "number"}
    schema = {"oneOf": [one, {"type": "array", "items": one}, {"type": "string"}], "description": description}
    return Annotated[list[item], BeforeValidator(_items), WithJsonSchema(schema)]


Flag = Annotated[bool, BeforeValidator(_flag)]
ServerPath = text(4096)  # a path on the server (inside the data roots) or inside an upload
# GPU ids as this machine numbers them: a JSON list, or "0,1" in a form.
GpuIds = Annotated[list[str], BeforeValidator(lambda value: [str(item) for item in _items(value)]),
                   WithJsonSchema({"oneOf": [{"type": "array", "items": {"type": "string"}},
                                             {"type": "string"}], "description": "exactly these GPUs"})]
