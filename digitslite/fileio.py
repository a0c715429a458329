"""Crash-safe file writing: a reader sees the old content or the new one, never half a file."""
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from digitslite.errors import UserError

PathLike = str | os.PathLike


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in the folder `path` survive a crash of the machine."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: PathLike, data: bytes, *, durable: bool = True) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`.

    An existing file keeps its permission bits; a new one gets 0644. `durable` also fsyncs the
    file and its folder so the new content survives a power cut (frequent small updates skip it).
    A folder that is missing or not writable is a UserError naming the file.
    """
    target = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise UserError(f"{target}: cannot write the file: {exc.strerror or exc}; "
                        "check that its folder exists and is writable") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            if durable:
                os.fsync(stream.fileno())
        os.chmod(temporary, target.stat().st_mode & 0o777 if target.exists() else 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(target.parent)


def write_json_atomically(path: PathLike, payload: Any, *, durable: bool = True) -> None:
    """`payload` as indented JSON, written with write_atomically."""
    text = json.dumps(payload, indent=1, sort_keys=True) + "\n"
    write_atomically(path, text.encode("utf-8"), durable=durable)


def read_json(path: PathLike) -> Any:
    """The JSON document in `path` (UTF-8)."""
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)
