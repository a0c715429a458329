"""Options that several sub-commands share, parsed in one place."""
from collections.abc import Callable
from typing import Any

import click

InputShapes = list[tuple[str | None, list[int]]]  # what --input-shape gives a command: (blob or None, dims)


def _parse_input_shapes(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> InputShapes:
    """[BLOB=]N,C,H,W options -> [(blob or None, dims)]."""
    parsed = []
    for value in values:
        name, _, dims = value.rpartition("=")
        try:
            numbers = [int(dim) for dim in dims.split(",")]
        except ValueError:
            raise click.BadParameter(f"'{value}' is not [BLOB=]N,C,H,W (e.g. 1,3,500,500 or "
                                     "data=1,3,500,500)") from None
        parsed.append((name or None, numbers))
    return parsed


def input_shape_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A repeatable --input-shape [BLOB=]N,C,H,W option, parsed to [(blob or None, dims)]."""
    return click.option("--input-shape", "input_shapes", multiple=True, metavar="[BLOB=]N,C,H,W",
                        callback=_parse_input_shapes, help=help_text)
