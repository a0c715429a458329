"""Reading a request against its schema: the one place where a validation failure becomes the API's
error, a 422 {"error": {"message", "field"}} whose message names the field as the client wrote it.

A blank value (null, or an empty form field) counts as not given, so that a cleared form field and
a left-out JSON key mean the same. Which fields were given is kept beside the parsed values: a job
saves those fields as its request, typed as the schema reads them (a form's "0.01" is the number
0.01, "100,200" the list [100, 200]), so that the API shows numbers as numbers and a clone reads
the same request again.
"""
from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from digitslite.server.errors import ApiError


def rule_broken(field: str, message: str) -> PydanticCustomError:
    """A rule between fields (raised by a schema's model validator), blamed on `field`."""
    return PydanticCustomError("rule", "{message}", {"message": message, "field": field})


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _message(error: ErrorDetails, known: list[str]) -> tuple[str, str | None]:
    """(message, field) of one pydantic error, in the API's words."""
    ctx = error.get("ctx") or {}
    kind, value = error["type"], error.get("input")
    if kind == "rule":
        return ctx["message"], ctx["field"]
    field = str(error["loc"][0]) if error["loc"] else None
    shown = _shown(value)
    words = {
        "invalid": lambda: f"{field}: {ctx.get('shown')} is not {ctx.get('expected')}",
        "refused": lambda: f"{field} {ctx.get('problem')}",
        "missing": lambda: f"{field} is required",
        "extra_forbidden": lambda: f"{field}: unknown field; the known fields are {', '.join(known)}",
        "literal_error": lambda: f"{field}: {value!r} is not one of {ctx.get('expected')}",
        "string_type": lambda: f"{field}: {value!r} is not a string",
        "string_too_long": lambda: f"{field} is longer than {ctx.get('max_length')} characters",
        "greater_than_equal": lambda: f"{field} must be at least {_shown(ctx.get('ge'))}, got {shown}",
        "less_than_equal": lambda: f"{field} must be at most {_shown(ctx.get('le'))}, got {shown}",
        "greater_than": lambda: f"{field} must be above {_shown(ctx.get('gt'))}, got {shown}",
        "list_type": lambda: f"{field}: {value!r} is not a list",
    }
    return words.get(kind, lambda: f"{field}: {error['msg']}")(), field


class Body(BaseModel):
    """A request's fields; `parse` reads and checks them (unknown fields refused: a typo must not fall
    back to a default)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True)
    _given: dict[str, Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Self:
        known = sorted(cls.model_fields)
        if cls.model_config.get("extra") == "forbid":
            unknown = [name for name in data if name not in cls.model_fields]
            if unknown:
                raise ApiError(422, f"{unknown[0]}: unknown field; the known fields are {', '.join(known)}",
                               unknown[0])
        given = {name: value for name, value in data.items()
                 if name in cls.model_fields and value is not None and value != ""}
        try:
            body = cls.model_validate(given)
        except ValidationError as exc:
            message, field = _message(exc.errors()[0], known)
            raise ApiError(422, message, field) from None
        body._given = given
        return body

    def given(self, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
        """The fields the request gave, as JSON values of their parsed types."""
        return self.model_dump(mode="json", include={name for name in self._given if name not in exclude})

    def has(self, name: str) -> bool:
        return name in self._given


class Query(Body):
    """A query string's parameters (or a page helper's form fields); others, a cache-buster say, are
    ignored."""

    model_config = ConfigDict(extra="ignore")
