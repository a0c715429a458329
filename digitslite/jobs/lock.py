"""The worker lock: a POSIX record lock on JOBDIR/worker.lock.

The live worker holds it for its whole life and the kernel drops it the instant the worker dies,
even by SIGKILL; unlike flock it is not inherited by forked children (data loaders), so an orphan
child never makes a dead worker look alive. Whoever holds the lock is the only writer of state.json.
"""
import fcntl
import os
from pathlib import Path


class JobLock:
    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self, *, blocking: bool) -> bool:
        """Take the lock; without blocking, return False at once when another process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the record lock
            self._fd = None

    def __enter__(self) -> "JobLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_held(path: Path) -> bool:
    """Whether some other process (a live worker) holds the lock right now."""
    lock = JobLock(path)
    if lock.acquire(blocking=False):
        lock.release()
        return False
    return True
