"""Typed reading of request fields, from a JSON object or a multipart form alike.

Every refusal is a 422 naming the field, what was given and what is expected, so that a client can
put the message next to the right input.
"""
from collections.abc import Iterable, Mapping
from typing import Any

from digitslite.server.errors import ApiError
from digitslite.server.validators import MAX_INT, check_text, parse_whole

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _invalid(name: str, value: Any, expected: str) -> ApiError:
    return ApiError(422, f"{name}: {value!r} is not {expected}", name)


class Fields:
    def __init__(self, data: Mapping[str, Any], prefix: str = ""):
        self._data = data
        self._prefix = prefix

    def _name(self, name: str) -> str:
        return f"{self._prefix}{name}"

    def has(self, name: str) -> bool:
        return self._data.get(name) not in (None, "")

    def raw(self, name: str) -> Any:
        return self._data.get(name)

    def reject_unknown(self, known: Iterable[str]) -> None:
        """Refuse fields nobody reads: a typo must not silently fall back to a default."""
        known = set(known)
        for name in self._data:
            if name not in known:
                raise ApiError(422, f"{self._name(name)}: unknown field; the known fields are "
                                    f"{', '.join(sorted(known))}", self._name(name))

    def required(self, name: str) -> None:
        if not self.has(name):
            raise self._refuse(name, "is required")

    def text(self, name: str, default: str | None = None, *, required: bool = False,
             max_length: int = 10_000) -> str | None:
        if required:
            self.required(name)
        value = self._data.get(name)
        if value in (None, ""):
            return default
        if not isinstance(value, str):
            raise _invalid(self._name(name), value, "a string")
        if len(value) > max_length:
            raise self._refuse(name, f"is longer than {max_length} characters")
        return check_text(value, self._name(name))

    def choice(self, name: str, choices: Iterable[str], default: str | None = None) -> str | None:
        value = self.text(name, default)
        choices = tuple(choices)
        if value is not None and value not in choices:
            raise _invalid(self._name(name), value, f"one of {', '.join(choices)}")
        return value

    def integer(self, name: str, default: int | None = None, *, minimum: int | None = None,
                maximum: int | None = None, required: bool = False) -> int | None:
        if required:
            self.required(name)
        value = self._data.get(name)
        if value in (None, ""):
            return default
        return self._check_range(name, self._to_int(name, value), minimum, maximum)

    def number(self, name: str, default: float | None = None, *, minimum: float | None = None,
               maximum: float | None = None, positive: bool = False) -> float | None:
        value = self._data.get(name)
        if value in (None, ""):
            return default
        return self._check_number(name, value, minimum, maximum, positive)

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self._data.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise _invalid(self._name(name), value, "true or false")

    def numbers(self, name: str, *, positive: bool = False) -> list[float]:
        """One number or several (a JSON list, or "0.01,0.001" in a form): the values of a sweep."""
        return [self._check_number(name, item, None, None, positive) for item in self._items(name)]

    def integers(self, name: str, *, minimum: int | None = None, maximum: int | None = None) -> list[int]:
        return [self._check_range(name, self._to_int(name, item), minimum, maximum)
                for item in self._items(name)]

    def _items(self, name: str) -> list[Any]:
        value = self._data.get(name)
        if value in (None, ""):
            return []
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return list(value) if isinstance(value, list) else [value]

    def _refuse(self, name: str, problem: str) -> ApiError:
        return ApiError(422, f"{self._name(name)} {problem}", self._name(name))

    def _to_int(self, name: str, value: Any) -> int:
        if isinstance(value, bool):
            raise _invalid(self._name(name), value, "a whole number")
        number = None
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            number = parse_whole(value)
        if number is None or not -MAX_INT <= number <= MAX_INT:
            raise _invalid(self._name(name), value, f"a whole number of at most {len(str(MAX_INT))} digits")
        return number

    def _check_range(self, name: str, value: int, minimum: int | None, maximum: int | None) -> int:
        if minimum is not None and value < minimum:
            raise self._refuse(name, f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise self._refuse(name, f"must be at most {maximum}, got {value}")
        return value

    def _check_number(self, name: str, value: Any, minimum: float | None, maximum: float | None,
                      positive: bool) -> float:
        if isinstance(value, bool):
            raise _invalid(self._name(name), value, "a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise _invalid(self._name(name), value, "a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise _invalid(self._name(name), value, "a finite number")
        if positive and number <= 0:
            raise self._refuse(name, f"must be above 0, got {number:g}")
        if minimum is not None and number < minimum:
            raise self._refuse(name, f"must be at least {minimum:g}, got {number:g}")
        if maximum is not None and number > maximum:
            raise self._refuse(name, f"must be at most {maximum:g}, got {number:g}")
        return number
