"""The SQLite index over the job folders: fast listing, filtering and dependency look-ups.

Only the server writes it (and `digitslite jobs reindex`); the folders are the truth, and
`reconcile(reread_all=True)` makes the index again from them alone.
Each row remembers the modification times of the two files it was read from, so that `reconcile`
finds, with one stat per job, every folder that changed while no server was watching.
"""
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitslite.jobs.folder import JobFolder, is_job_folder_name
from digitslite.jobs.model import Status

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    grp TEXT NOT NULL,
    priority INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    progress REAL NOT NULL,
    message TEXT NOT NULL,
    error TEXT,
    depends_on TEXT NOT NULL,
    search TEXT NOT NULL,
    spec_mtime_ns INTEGER NOT NULL,
    state_mtime_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_kind_status ON jobs (kind, status, created);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, created);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created);
CREATE TABLE IF NOT EXISTS deps (
    job TEXT NOT NULL,
    needs TEXT NOT NULL,
    PRIMARY KEY (job, needs)
);
CREATE INDEX IF NOT EXISTS deps_by_needs ON deps (needs);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = ("id", "kind", "status", "name", "owner", "grp", "priority", "created", "updated", "progress",
            "message", "error", "depends_on", "search", "spec_mtime_ns", "state_mtime_ns")
_SUMMARY_COLUMNS = _COLUMNS[:13]
MAX_PER_PAGE = 500
MAX_PAGE = 10**9  # far past any listing, and (page - 1) * per_page stays a SQLite integer
# The orders a listing may ask for, by name; ties always fall back to newest first.
SORT_COLUMNS = {"created": "created", "name": "name COLLATE NOCASE", "status": "status",
                "owner": "owner", "group": "grp COLLATE NOCASE", "updated": "updated"}


@dataclass(frozen=True)
class JobFilter:
    kind: str | None = None
    status: str | None = None
    owner: str | None = None
    group: str | None = None
    text: str | None = None


def _storable(row: dict[str, Any]) -> dict[str, Any]:
    """`row`, or ValueError when a text column cannot be stored (SQLite takes UTF-8 only)."""
    for column, value in row.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"job.json or state.json: {column} is not valid Unicode text") from None
    return row


def row_from_folder(folder: JobFolder) -> dict[str, Any]:
    """The index row of one job folder. Raises OSError or ValueError when the folder is unreadable."""
    spec_mtime = folder.spec_file.stat().st_mtime_ns
    state_mtime = folder.state_file.stat().st_mtime_ns
    spec, state = folder.spec(), folder.state()
    return _storable({
        "id": spec.id, "kind": spec.kind, "status": str(state.status), "name": spec.name,
        "owner": spec.owner, "grp": spec.group, "priority": spec.priority, "created": spec.created,
        "updated": state_mtime / 1e9, "progress": state.progress, "message": state.message,
        "error": (state.error or {}).get("message"), "depends_on": json.dumps(spec.depends_on),
        "search": " ".join((spec.id, spec.name, spec.group, spec.notes, spec.kind)),
        "spec_mtime_ns": spec_mtime, "state_mtime_ns": state_mtime,
    })


def _summary(row: sqlite3.Row) -> dict[str, Any]:
    data = {key: row[key] for key in _SUMMARY_COLUMNS}
    data["group"] = data.pop("grp")
    data["depends_on"] = json.loads(data["depends_on"])
    return data


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class JobIndex:
    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")  # kept in the file: readers never wait for the writer
        conn.executescript(_SCHEMA)  # idempotent; executescript runs outside any transaction
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))

    def _conn(self) -> sqlite3.Connection:
        """One connection per thread: sqlite3 connections must not be shared between threads."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable at checkpoints, never corrupt
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- writing -------------------------------------------------------------------------------

    def put(self, row: dict[str, Any]) -> None:
        with self._write() as conn:
            self._put(conn, row)

    @staticmethod
    def _put(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
        placeholders = ", ".join("?" for _ in _COLUMNS)
        conn.execute(f"INSERT OR REPLACE INTO jobs ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
                     [row[col] for col in _COLUMNS])
        conn.execute("DELETE FROM deps WHERE job = ?", (row["id"],))
        conn.executemany("INSERT OR IGNORE INTO deps VALUES (?, ?)",
                         [(row["id"], needs) for needs in json.loads(row["depends_on"])])

    def refresh(self, folder: JobFolder) -> None:
        """Re-read one job folder into its row."""
        self.put(row_from_folder(folder))

    def remove(self, job_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            conn.execute("DELETE FROM deps WHERE job = ?", (job_id,))

    def reconcile(self, jobs_dir: Path, *, reread_all: bool = False) -> list[str]:
        """Bring the index in line with the folders; return the folders that could not be read.

        One stat per job: only folders whose files changed since they were indexed are re-read,
        unless `reread_all`. The rows change in one transaction, so readers never see a half index.
        """
        known = {row["id"]: (row["spec_mtime_ns"], row["state_mtime_ns"]) for row in
                 self._conn().execute("SELECT id, spec_mtime_ns, state_mtime_ns FROM jobs")}
        seen, changed, unreadable = set(), [], []
        for entry in os.scandir(jobs_dir):
            if not entry.is_dir() or not is_job_folder_name(entry.name):
                continue
            folder = JobFolder(Path(entry.path))
            seen.add(entry.name)
            try:
                mtimes = (folder.spec_file.stat().st_mtime_ns, folder.state_file.stat().st_mtime_ns)
                if reread_all or known.get(entry.name) != mtimes:
                    changed.append(row_from_folder(folder))
            except (OSError, ValueError, TypeError, KeyError):
                unreadable.append(entry.name)
        with self._write() as conn:
            for row in changed:
                self._put(conn, row)
            for job_id in known.keys() - seen:
                conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
                conn.execute("DELETE FROM deps WHERE job = ?", (job_id,))
        return unreadable

    # --- reading -------------------------------------------------------------------------------

    def get(self, job_id: str) -> dict[str, Any] | None:
        row = self._conn().execute(f"SELECT {', '.join(_SUMMARY_COLUMNS)} FROM jobs WHERE id = ?",
                                   (job_id,)).fetchone()
        return _summary(row) if row else None

    def statuses(self, job_ids: Iterable[str]) -> dict[str, Status]:
        ids = list(job_ids)
        if not ids:
            return {}
        rows = self._conn().execute(
            f"SELECT id, status FROM jobs WHERE id IN ({', '.join('?' for _ in ids)})", ids)
        return {row["id"]: Status(row["status"]) for row in rows}

    def ids_with_status(self, *statuses: Status) -> list[str]:
        """Ids in scheduling order: higher priority first, then first come first served."""
        marks = ", ".join("?" for _ in statuses)
        rows = self._conn().execute(
            f"SELECT id FROM jobs WHERE status IN ({marks}) ORDER BY priority DESC, created, id",
            [str(s) for s in statuses])
        return [row["id"] for row in rows]

    def dependents(self, job_id: str) -> list[str]:
        rows = self._conn().execute("SELECT job FROM deps WHERE needs = ? ORDER BY job", (job_id,))
        return [row["job"] for row in rows]

    def count_by_status(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
        return {row["status"]: row["n"] for row in rows}

    # Methods annotated with list[...] stay above `list` below, which shadows the builtin in this class.
    def groups_of(self, kind: str) -> list[str]:
        """The groups that jobs of `kind` belong to."""
        rows = self._conn().execute("SELECT DISTINCT grp FROM jobs WHERE kind = ? AND grp != '' "
                                    "ORDER BY grp COLLATE NOCASE", (kind,))
        return [row[0] for row in rows]

    def owners_of(self, kind: str) -> list[str]:
        """The owners of jobs of `kind`."""
        rows = self._conn().execute("SELECT DISTINCT owner FROM jobs WHERE kind = ? ORDER BY owner", (kind,))
        return [row[0] for row in rows]

    def count_by_kind(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT kind, COUNT(*) AS n FROM jobs GROUP BY kind")
        return {row["kind"]: row["n"] for row in rows}

    def list(self, where: JobFilter, *, page: int = 1, per_page: int = 50, sort: str = "created",
             descending: bool = True) -> tuple[list[dict[str, Any]], int]:
        """One page of jobs matching `where` in the order `sort` names (ties newest first), and the
        number of all matches."""
        clauses, args = [], []
        for column, value in (("kind", where.kind), ("status", where.status), ("owner", where.owner),
                              ("grp", where.group)):
            if value:
                clauses.append(f"{column} = ?")
                args.append(value)
        if where.text:
            clauses.append("search LIKE ? ESCAPE '\\'")
            args.append(f"%{_escape_like(where.text)}%")
        condition = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        conn = self._conn()
        total = conn.execute(f"SELECT COUNT(*) FROM jobs {condition}", args).fetchone()[0]
        rows = conn.execute(
            f"SELECT {', '.join(_SUMMARY_COLUMNS)} FROM jobs {condition} "
            f"ORDER BY {SORT_COLUMNS[sort]} {'DESC' if descending else 'ASC'}, created DESC, id DESC "
            "LIMIT ? OFFSET ?",
            [*args, per_page, (page - 1) * per_page])
        return [_summary(row) for row in rows], total

