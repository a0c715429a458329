"""GET /api/v1/jobs/{id}/events: a job's life as Server-Sent Events.

Events: `status` (status, progress, message, error, and `transitions`, the number of status changes
so far, by which a page tells a fresh status from a stale reply), `metrics` (new metric records; the event id
counts the records sent, so a reconnecting EventSource resumes where it stopped), `snapshot` (a new
snapshot's iteration) and `end` once the job has stopped. The stream polls the job folder; the
folder, not the server's memory, is what the worker writes.
"""
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, request

from digitslite.jobs.folder import JobFolder
from digitslite.jobs.model import TERMINAL
from digitslite.server.errors import ApiError
from digitslite.server.fields import Fields
from digitslite.server.services import services

events_api = Blueprint("events_api", __name__)

POLL_S = 0.5
KEEPALIVE_S = 10.0


class MetricsTail:
    """Reads the complete lines appended to metrics.jsonl since the last call."""

    def __init__(self, path: Path, skip: int):
        self.path = path
        self.offset = 0
        self.count = 0
        self._skip = skip

    def new_records(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        complete = data[:data.rfind(b"\n") + 1]
        self.offset += len(complete)
        records = []
        for line in complete.splitlines():
            self.count += 1
            if self.count > self._skip:
                records.append(json.loads(line))
        return records


def _event(name: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data)}\n\n"


def job_events(folder: JobFolder, after: int) -> Iterator[str]:
    yield "retry: 2000\n\n"
    metrics = MetricsTail(folder.metrics_file, after)
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
        records = metrics.new_records()
        if records:
            out.append(_event("metrics", {"records": records, "next": metrics.count}, metrics.count))
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
def events(job_id: str):
    if services().index.get(job_id) is None:
        raise ApiError(404, f"no job with id {job_id!r}; list the jobs with GET /api/v1/jobs")
    after = Fields({"after": request.headers.get("Last-Event-ID") or request.args.get("after")}).integer(
        "after", 0, minimum=0)
    folder = services().scheduler.folder(job_id)
    return Response(job_events(folder, after), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
