"""Read-only queries over the job index for the home page's tables: any sort column, a group filter,
the groups in use and counts per kind. JobIndex.list keeps the API's fixed newest-first order; the
page needs more, so it reads the same SQLite file on a read-only connection of its own per thread.
"""
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SORT_COLUMNS = {"created": "created", "name": "name COLLATE NOCASE", "status": "status",
                "owner": "owner", "group": "grp COLLATE NOCASE", "updated": "updated"}
_ROW = "id, kind, status, name, owner, grp, created, updated, progress, message, error"
_local = threading.local()


@dataclass(frozen=True)
class JobQuery:
    kind: str | None = None
    status: str | None = None
    owner: str | None = None
    group: str | None = None
    text: str | None = None
    sort: str = "created"
    descending: bool = True
    page: int = 1
    per_page: int = 25


def _connection(index_file: Path) -> sqlite3.Connection:
    connections = _local.__dict__.setdefault("connections", {})
    conn = connections.get(index_file)
    if conn is None:
        conn = sqlite3.connect(f"{index_file.as_uri()}?mode=ro", uri=True, timeout=30)
        conn.row_factory = sqlite3.Row
        connections[index_file] = conn
    return conn


def _row(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["group"] = data.pop("grp")
    return data


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def query_jobs(index_file: Path, query: JobQuery) -> tuple[list[dict[str, Any]], int]:
    """One page of matching jobs in the asked order (ties newest first), and the number of matches."""
    clauses, args = [], []
    for column, value in (("kind", query.kind), ("status", query.status), ("owner", query.owner),
                          ("grp", query.group)):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    if query.text:
        clauses.append("search LIKE ? ESCAPE '\\'")
        args.append(f"%{_escape_like(query.text)}%")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    direction = "DESC" if query.descending else "ASC"
    order = f"{SORT_COLUMNS[query.sort]} {direction}, created DESC, id DESC"
    conn = _connection(index_file)
    total = conn.execute(f"SELECT COUNT(*) FROM jobs {where}", args).fetchone()[0]
    rows = conn.execute(f"SELECT {_ROW} FROM jobs {where} ORDER BY {order} LIMIT ? OFFSET ?",
                        [*args, query.per_page, (query.page - 1) * query.per_page])
    return [_row(row) for row in rows], total


def groups_of(index_file: Path, kind: str) -> list[str]:
    rows = _connection(index_file).execute(
        "SELECT DISTINCT grp FROM jobs WHERE kind = ? AND grp != '' ORDER BY grp COLLATE NOCASE", (kind,))
    return [row[0] for row in rows]


def owners_of(index_file: Path, kind: str) -> list[str]:
    rows = _connection(index_file).execute("SELECT DISTINCT owner FROM jobs WHERE kind = ? ORDER BY owner",
                                           (kind,))
    return [row[0] for row in rows]


def counts_by_kind(index_file: Path) -> dict[str, int]:
    rows = _connection(index_file).execute("SELECT kind, COUNT(*) FROM jobs GROUP BY kind")
    return {kind: count for kind, count in rows}
