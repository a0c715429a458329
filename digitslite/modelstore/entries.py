"""Writing store folders: an entry's info.json with a checksum for each of its files, and master.json.

Used by import, publish, convolutionalize and `digitslite store index`, so every folder they make is a
valid store entry (a pretrained model folder can be published as it is).
"""
import fcntl
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from digitslite.errors import UserError
from digitslite.fileio import read_json, write_json_atomically
from digitslite.modelstore.format import (
    INFO_FILE,
    MASTER_FILE,
    FileRecord,
    Master,
    ModelInfo,
    file_digests,
    is_plain_name,
    parse_file_records,
    parse_info,
    parse_master,
)

DEFAULT_MESSAGE = "digitslite model store"


def entry_files(folder: Path, previous: Mapping[str, FileRecord] | None = None) -> dict[str, FileRecord]:
    """A record per file of `folder` (info.json, hidden and .part files aside): sha256 and size.

    A file `previous` knew keeps its other digests (a published sha1) when they still match; a
    previous record with a URL whose file is not in the folder (remote weights) is kept as it is.
    """
    previous = previous or {}
    records = {}
    for path in sorted(folder.iterdir()):
        name = path.name
        if name == INFO_FILE or name.startswith(".") or name.endswith(".part") or not path.is_file():
            continue
        known = previous.get(name)
        algorithms = {"sha256", *(known.digests if known else ())}
        digests = file_digests(path, algorithms)
        if known and any(digests[algorithm] != value for algorithm, value in known.digests.items()):
            digests = {"sha256": digests["sha256"]}
        records[name] = FileRecord(name, digests, size=path.stat().st_size)
    for name, record in previous.items():
        if name not in records and record.url:
            records[name] = record
    return records


def write_info(folder: Path, data: Mapping[str, Any],
               previous: Mapping[str, FileRecord] | None = None) -> ModelInfo:
    """Write `folder`/info.json: `data` with "files" describing what the folder holds now."""
    records = entry_files(folder, previous)
    content = {**data, "files": {name: record.to_dict() for name, record in records.items()}}
    info = parse_info(content, str(folder / INFO_FILE))
    write_json_atomically(folder / INFO_FILE, content)
    return info


@contextmanager
def store_lock(store_dir: Path) -> Iterator[None]:
    """One writer of master.json at a time, across processes and threads: a flock on the store
    folder itself (per open file, so threads exclude each other too; no lock file is left)."""
    fd = os.open(store_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_master(store_dir: Path) -> Master:
    """The store's master.json, or an empty one where there is none yet."""
    path = store_dir / MASTER_FILE
    if not path.exists():
        return Master(DEFAULT_MESSAGE, [])
    try:
        return parse_master(read_json(path), str(path))
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); fix or remove it, then run `digitslite store index "
                        f"{store_dir}`") from None


def add_to_master(store_dir: Path, name: str) -> Master:
    """List the entry folder `name` in master.json (written atomically, under the store lock)."""
    if not is_plain_name(name):
        raise UserError(f"{name!r} cannot name a store entry; use letters, digits, '.', '_', '+' or '-'")
    with store_lock(store_dir):
        master = read_master(store_dir)
        if name not in master.children:
            master = Master(master.msg, [*master.children, name])
            write_json_atomically(store_dir / MASTER_FILE, master.to_dict())
        return master


def index_store(store_dir: Path) -> Master:
    """Rewrite every entry's "files" from what its folder holds, and master.json's "children" from
    the folders that have an info.json: what a person runs after adding or changing files by hand."""
    store_dir = Path(store_dir)
    if not store_dir.is_dir():
        raise UserError(f"{store_dir}: not a folder; give the store folder")
    entries = sorted(path for path in store_dir.iterdir()
                     if (path / INFO_FILE).is_file() and not path.name.startswith("."))
    for folder in entries:
        info_path = folder / INFO_FILE
        try:
            data = read_json(info_path)
        except ValueError as exc:
            raise UserError(f"{info_path}: not valid JSON ({exc}); fix it and index again") from None
        if not isinstance(data, dict):
            raise UserError(f"{info_path}: not a JSON object; write {{\"name\": ..., \"framework\": ...}}")
        previous = parse_file_records(data.get("files", {}), str(info_path))
        write_info(folder, {key: value for key, value in data.items() if key != "files"}, previous)
    with store_lock(store_dir):
        master = Master(read_master(store_dir).msg, [folder.name for folder in entries])
        write_json_atomically(store_dir / MASTER_FILE, master.to_dict())
    return master
