"""LMDB writing whose map grows on demand, from one process or several at once.

LMDB needs its maximum size up front; guessing high wastes address space and guessing low fails.
A writer starts small and doubles the map whenever a transaction hits MDB_MAP_FULL, then replays
that transaction. Several encoder processes may write one environment: LMDB serialises their
transactions, and a process whose map another process has grown adopts the new size
(MDB_MAP_RESIZED) and retries. Records are committed in batches and synced once at close.
"""
from pathlib import Path
from typing import Protocol

import lmdb

from digitslite.layout import DatasetFiles

INITIAL_MAP_SIZE = 64 << 20
BATCH_BYTES = 32 << 20


class LmdbWriter:
    """Writes key/value records into the LMDB directory `path` (created if missing)."""

    def __init__(self, path: Path, initial_map_size: int = INITIAL_MAP_SIZE) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        self._env = lmdb.open(str(path), map_size=initial_map_size, subdir=True, sync=False,
                              metasync=False, readahead=False)
        self._pending: list[tuple[bytes, bytes]] = []
        self._pending_bytes = 0

    def put(self, key: bytes, value: bytes) -> None:
        self._pending.append((key, value))
        self._pending_bytes += len(key) + len(value)
        if self._pending_bytes >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Commit the pending records, growing the map until they fit."""
        if not self._pending:
            return
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    for key, value in self._pending:
                        txn.put(key, value)
                break
            except lmdb.MapFullError:
                self._env.set_mapsize(self._env.info()["map_size"] * 2)
            except lmdb.MapResizedError:
                self._env.set_mapsize(0)  # adopt the size another process has set
        self._pending, self._pending_bytes = [], 0

    def close(self) -> None:
        """Flush, force the data to disk and release the environment."""
        self.flush()
        self._env.sync(True)
        self._env.close()

    def abandon(self) -> None:
        """Release the environment without committing what is pending."""
        self._env.close()

    @property
    def map_size(self) -> int:
        return self._env.info()["map_size"]


class SplitWriters:
    """The `<split>_db/features` and `<split>_db/labels` LMDBs of one output folder, each opened
    in this process on its first record."""

    def __init__(self, out_dir: Path) -> None:
        self._out_dir = out_dir
        self._writers: dict[tuple[str, str], LmdbWriter] = {}

    def put(self, split: str, key: bytes, records: dict[str, bytes]) -> None:
        """One record per database (`features`, `labels`, ...) under `key`."""
        for database, value in records.items():
            writer = self._writers.get((split, database))
            if writer is None:
                path = DatasetFiles(self._out_dir).db(split, database)
                writer = self._writers[split, database] = LmdbWriter(path)
            writer.put(key, value)

    def close(self, commit: bool = True) -> None:
        """Commit and sync everything (or, when not `commit`, just let go) and forget the writers."""
        for writer in self._writers.values():
            if commit:
                writer.close()
            else:
                writer.abandon()
        self._writers.clear()


class StopFlag(Protocol):
    """Set when the work is to stop early: a multiprocessing.Event, or parallel.LocalFlag in-process."""

    def is_set(self) -> bool: ...


class WritingState:
    """What an encoding process keeps that writes records (a parallel.WorkState's base): its writers,
    None when it only checks, committed by finish_writing and let go by abandon."""

    def __init__(self, out_dir: Path | None, stop_encoding: StopFlag) -> None:
        self.stop_encoding = stop_encoding
        self.writers = SplitWriters(out_dir) if out_dir is not None else None

    def finish_writing(self) -> None:
        """Commit and close this process's writers."""
        if self.writers is not None:
            self.writers.close()

    def abandon(self) -> None:
        """Let go of the writers without committing (the work stopped early)."""
        if self.writers is not None:
            self.writers.close(commit=False)
