"""GET /api/v1/jobs/{id}/events: a job's life as Server-Sent Events.

Events: `status` (status, progress, message, error, and `transitions`, the number of status changes
so far, by which a page tells a fresh status from a stale reply), `metrics` (new metric records),
`reset` (the metrics file was replaced: a resumed training keeps only the records before its
snapshot, and the records are sent again from the first), `snapshot` (a new snapshot's iteration)
and `end` once the job has stopped. The id of a metrics event names the file and counts the records
sent from it ("FILE:COUNT"), so a reconnecting EventSource resumes where it stopped, or starts over
with a `reset` when the file was replaced meanwhile. The stream polls the job folder; the folder,
not the server's memory, is what the worker writes.
"""
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, request

from digitslite.jobs.folder import JobFolder
from digitslite.jobs.model import TERMINAL
from digitslite.server.errors import ApiError
from digitslite.server.schemas.openapi import operation
from digitslite.server.services import services

events_api = Blueprint("events_api", __name__)

POLL_S = 0.5
KEEPALIVE_S = 10.0


class MetricsTail:
    """Reads the complete lines appended to metrics.jsonl since the last call, and notices when the
    file is replaced (a new inode: the trainer rewrites it by rename, and only appends otherwise)."""

    def __init__(self, path: Path, skip: int, file_id: int | None = None):
        """`skip` records of the file `file_id` were sent already (None: of whatever file is there)."""
        self.path = path
        self.file_id = file_id
        self.offset = 0
        self.count = 0
        self._skip = skip

    def new_records(self) -> tuple[list[dict[str, Any]], bool]:
        """(the new records, whether the file was replaced since the records counted so far)."""
        try:
            with open(self.path, "rb") as fh:
                replaced = self._follow(os.fstat(fh.fileno()).st_ino)
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return [], False
        complete = data[:data.rfind(b"\n") + 1]
        self.offset += len(complete)
        records = []
        for line in complete.splitlines():
            self.count += 1
            if self.count > self._skip:
                records.append(json.loads(line))
        return records, replaced

    def _follow(self, file_id: int) -> bool:
        if self.file_id in (None, file_id):
            self.file_id = file_id
            return False
        self.file_id, self.offset, self.count, self._skip = file_id, 0, 0, 0
        return True

    @property
    def position(self) -> str:
        """The event id: which file, and how many of its records were read."""
        return f"{self.file_id}:{self.count}"


def _resume_point(text: str | None) -> tuple[int | None, int]:
    """(file, records already sent) from a Last-Event-ID ("FILE:COUNT") or an `after` count."""
    file_part, _, count_part = (text or "").rpartition(":")
    try:
        return (int(file_part) if file_part else None), int(count_part or 0)
    except ValueError:
        raise ApiError(422, f"after: {text!r} is not a count of records (or FILE:COUNT, as the "
                            "stream's event ids are)", "after") from None


def _event(name: str, data: Any, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data)}\n\n"


def job_events(folder: JobFolder, after: int, file_id: int | None = None) -> Iterator[str]:
    yield "retry: 2000\n\n"
    metrics = MetricsTail(folder.metrics_file, after, file_id)
    last_status = None
    snapshots: set[int] = set()
    last_sent = time.monotonic()
    while True:
        try:
            state = folder.state()
            found = {snap.iteration for snap in folder.snapshots()}
        except FileNotFoundError:
            yield _event("end", {"status": "deleted"})
            return
        out = []
        status = {"status": str(state.status), "progress": state.progress, "message": state.message,
                  "error": state.error, "transitions": len(state.history)}
        if status != last_status:
            out.append(_event("status", status))
            last_status = status
        records, replaced = metrics.new_records()
        if replaced:
            out.append(_event("reset", {}))
        if records:
            out.append(_event("metrics", {"records": records, "next": metrics.count}, metrics.position))
        for iteration in sorted(found - snapshots):
            out.append(_event("snapshot", {"iteration": iteration}))
        snapshots = found
        if state.status in TERMINAL:
            out.append(_event("end", {"status": str(state.status)}))
            yield "".join(out)
            return
        if out:
            last_sent = time.monotonic()
            yield "".join(out)
        elif time.monotonic() - last_sent > KEEPALIVE_S:
            last_sent = time.monotonic()
            yield ": keepalive\n\n"
        time.sleep(POLL_S)


@events_api.get("/jobs/<job_id>/events")
@operation({200: "text/event-stream"}, errors=(401, 404, 422), extra_query={"after": {
    "type": "string", "description": "records already seen: a count, or a metrics event's id FILE:COUNT "
                                     "(as Last-Event-ID)"}})
def events(job_id: str):
    """Server-Sent Events: status, metrics, reset, snapshot, end"""
    if services().index.get(job_id) is None:
        raise ApiError(404, f"no job with id {job_id!r}; list the jobs with GET /api/v1/jobs")
    file_id, after = _resume_point(request.headers.get("Last-Event-ID") or request.args.get("after"))
    if after < 0:
        raise ApiError(422, "after: at least 0", "after")
    folder = services().scheduler.folder(job_id)
    return Response(job_events(folder, after, file_id), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
