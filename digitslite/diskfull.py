"""Recognising a full disk behind the many ways it surfaces (ENOSPC, SQLite's "disk is full", LMDB's
I/O errors), so that every interface can say "disk full" with the path instead of an internal error."""
import errno
import shutil
import sqlite3
from pathlib import Path

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
LOW_SPACE_BYTES = 16 << 20  # below this, a failed write is taken for a full disk


def free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def is_disk_full(exc: BaseException, where: Path | None = None) -> bool:
    """Whether `exc` means the disk holding `where` is full."""
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
        return True
    # LMDB and others report a failed write as a plain I/O error; the free space tells.
    if where is not None and ("Input/output error" in str(exc) or "No space" in str(exc)):
        free = free_bytes(where)
        return free is not None and free < LOW_SPACE_BYTES
    return False


def disk_full_message(where: Path) -> str:
    free = free_bytes(where)
    left = "" if free is None else f" ({free // 1024} KiB left)"
    return f"disk full at {where}{left}; free some space there (delete old jobs), then resume the job"
