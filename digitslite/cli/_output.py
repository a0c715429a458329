"""Shared output helpers for sub-commands: one place decides how --json output is written."""
import json
from typing import Any

import click


def emit_json(payload: Any) -> None:
    """Print `payload` as one JSON document on stdout."""
    click.echo(json.dumps(payload, indent=2, sort_keys=False))
