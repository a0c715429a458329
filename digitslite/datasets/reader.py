"""Reading a dataset folder's LMDBs: the one place that opens them for reading.

py-lmdb refuses to open one environment twice in a process, that refusal survives a fork, and the
server reads from several threads. So every reader shares one read-only environment per LMDB in
the process: each read takes a lock and a short transaction (no transaction outlives a call, so an
environment can be closed at any time), at most OPEN_LIMIT environments stay open (the least
recently used is closed first), and all are closed just before a fork, so that DataLoader workers
open their own. Records are read in key order, as Caffe's Data layer reads them.
"""
import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import lmdb

from digitslite.datasets.records import datum_array, record_key
from digitslite.errors import UserError
from digitslite.layout import DB_PARTS, DB_STAGES, DatasetFiles

OPEN_LIMIT = 16
_lock = threading.Lock()
_open: OrderedDict[Path, lmdb.Environment] = OrderedDict()


@functools.lru_cache(maxsize=1024)
def _canonical(path: Path) -> Path:
    """`path` resolved, remembered: resolving walks every component with lstat (about 35 us, a
    twentieth of a 160x120 record's read and decode), and every read asks. Cleared with the
    environments, so that a path that now leads elsewhere is resolved again."""
    return path.resolve()


def _environment(path: Path) -> lmdb.Environment:
    """Called with the lock held: this process's environment for the LMDB folder `path`."""
    key = _canonical(path)
    env = _open.pop(key, None)
    if env is None:
        if not (key / "data.mdb").is_file():
            raise UserError(f"{path}: not an LMDB folder (no data.mdb); point at a dataset's "
                            "<stage>_db/features or labels, as `digitslite dataset create` writes them")
        env = lmdb.open(str(key), readonly=True, lock=False, readahead=False, subdir=True)
    _open[key] = env
    while len(_open) > OPEN_LIMIT:
        _open.popitem(last=False)[1].close()
    return env


def close_readers() -> None:
    """Close every environment of this process; the next read opens it again.

    Runs before every fork; call it also before deleting or rewriting a dataset in this process.
    """
    with _lock:
        for env in _open.values():
            env.close()
        _open.clear()
        _canonical.cache_clear()


os.register_at_fork(before=close_readers)


def db_keys(path: Path) -> list[bytes]:
    """The keys of the LMDB at `path`, in order."""
    with _lock, _environment(path).begin() as txn:
        return list(txn.cursor().iternext(keys=True, values=False))


def db_value(path: Path, key: bytes) -> bytes | None:
    with _lock, _environment(path).begin() as txn:
        return txn.get(key)


def first_record_shape(path: Path) -> tuple[int, ...] | None:
    """C, H, W of the first Datum of an LMDB folder (None if it is not one, or empty)."""
    if not (path / "data.mdb").is_file():
        return None
    with _lock, _environment(path).begin() as txn:
        first = next(txn.cursor().iternext(keys=False, values=True), None)
    return tuple(datum_array(first).shape) if first is not None else None


def read_record(dataset_dir: Path, stage: str, part: str, position: int) -> bytes | None:
    """The serialized Datum at `position` of a split's `part`, or None when there is none."""
    path = DatasetFiles(dataset_dir).db(stage, part)
    if stage not in DB_STAGES or part not in DB_PARTS or not path.is_dir():
        return None
    return db_value(path, record_key(position))


def split_records(dataset_dir: Path, stage: str, limit: int | None = None
                  ) -> Iterator[tuple[bytes, bytes, bytes | None]]:
    """(key, features Datum, labels Datum or None) of a split, in key order, at most `limit`."""
    files = DatasetFiles(dataset_dir)
    features, labels = files.db(stage, "features"), files.db(stage, "labels")
    for key in db_keys(features)[:limit]:
        yield key, db_value(features, key), db_value(labels, key)


def has_split(dataset_dir: Path, stage: str) -> bool:
    return DatasetFiles(dataset_dir).split_dir(stage).is_dir()
