"""The JSON API for jobs of every kind: list, read, follow, abort, resume, clone, delete; and /system."""
import json
import platform
from importlib import metadata
from typing import Any

from flask import Blueprint, Response, jsonify, request, send_file

from digitslite import __version__
from digitslite.jobs.gpus import query_gpus
from digitslite.jobs.index import JobFilter
from digitslite.jobs.model import Status
from digitslite.server.auth import current_identity, require_owner
from digitslite.server.create_common import json_object_body
from digitslite.server.creators import clone_job
from digitslite.server.errors import ApiError
from digitslite.server.render import job_detail, job_summary
from digitslite.server.schemas.openapi import operation
from digitslite.server.schemas.requests import DeleteQuery, JobListQuery, LogQuery, RecordsQuery
from digitslite.server.schemas.responses import Created, JobDetail, JobList, Records, System
from digitslite.server.services import services
from digitslite.server.validators import text_problem

api = Blueprint("api", __name__)


def _row(job_id: str) -> dict[str, Any]:
    row = services().index.get(job_id)
    if row is None:
        raise ApiError(404, f"no job with id {job_id!r}; list the jobs with GET /api/v1/jobs")
    return row


def _detail(job_id: str) -> dict[str, Any]:
    svc = services()
    row = _row(job_id)
    detail = job_detail(svc.scheduler.folder(job_id), row, svc.index)
    if detail["status"] != row["status"]:
        svc.scheduler.sync_index(job_id)  # the worker moved on since the scheduler last looked
    return detail


@api.get("/jobs")
@operation({200: JobList}, errors=(401, 422), query=JobListQuery)
def list_jobs():
    """List jobs, newest first"""
    query = JobListQuery.parse(request.args.to_dict())
    where = JobFilter(kind=query.kind, status=query.status, owner=query.owner, text=query.text)
    page, per_page = query.page, query.per_page
    rows, total = services().index.list(where, page=page, per_page=per_page)
    return jsonify({"jobs": [job_summary(row) for row in rows], "total": total, "page": page,
                    "per_page": per_page, "pages": (total + per_page - 1) // per_page})


@api.get("/jobs/<job_id>")
@operation({200: JobDetail}, errors=(401, 404))
def get_job(job_id: str):
    """One job in full"""
    return jsonify(_detail(job_id))


@api.get("/jobs/<job_id>/metrics")
@operation({200: Records}, errors=(401, 404, 422), query=RecordsQuery)
def get_metrics(job_id: str):
    """Metric records (metrics.jsonl) after the first `after` ones"""
    _row(job_id)
    after = RecordsQuery.parse(request.args.to_dict()).after
    path = services().scheduler.folder(job_id).metrics_file
    records = []
    count = 0
    if path.exists():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break  # the worker is still writing this line
                count += 1
                if count > after:
                    records.append(json.loads(line))
    return jsonify({"metrics": records, "next": max(count, after)})


@api.get("/jobs/<job_id>/log")
@operation({200: "text/plain"}, errors=(401, 404, 422), query=LogQuery)
def get_log(job_id: str):
    """The job's log from byte `offset` on, as plain text (X-Next-Offset tells where to continue)"""
    _row(job_id)
    offset = LogQuery.parse(request.args.to_dict()).offset
    path = services().scheduler.folder(job_id).log_file
    data = b""
    if path.exists():
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    response = Response(data, mimetype="text/plain")
    response.headers["X-Next-Offset"] = str(offset + len(data))
    return response


@api.get("/jobs/<job_id>/files/<path:name>")
@operation({200: "application/octet-stream"}, errors=(401, 404))
def get_file(job_id: str, name: str):
    """A file of the job's folder (inference outputs, results.json, a snapshot); nothing outside it"""
    _row(job_id)
    if text_problem(name):
        raise ApiError(404, f"job {job_id} has no file {name!r}", "name")
    root = services().scheduler.folder(job_id).path.resolve()
    target = (root / name).resolve()
    if not target.is_relative_to(root) or not target.is_file() or target.name == "worker.lock":
        raise ApiError(404, f"job {job_id} has no file {name!r}", "name")
    return send_file(target)


@api.post("/jobs/<job_id>/abort")
@operation({202: JobDetail}, errors=(401, 403, 404, 409))
def abort_job(job_id: str):
    """Abort: SIGTERM (a model snapshots), SIGKILL after the grace period"""
    require_owner(_row(job_id)["owner"], "abort")
    services().scheduler.abort(job_id)
    return jsonify(_detail(job_id)), 202


@api.post("/jobs/<job_id>/resume")
@operation({202: JobDetail}, errors=(401, 403, 404, 409))
def resume_job(job_id: str):
    """Queue an aborted, failed or interrupted job again (models continue from a snapshot)"""
    require_owner(_row(job_id)["owner"], "resume")
    services().scheduler.resume(job_id)
    return jsonify(_detail(job_id)), 202


CLONE_BODY = {"type": "object",
              "description": "fields of the job kind's request (DatasetRequest, ModelRequest, "
                             "InferenceRequest, PretrainedRequest...) that replace the old job's; null "
                             "removes one"}


@api.post("/jobs/<job_id>/clone")
@operation({201: Created}, errors=(401, 403, 404, 422), body=CLONE_BODY)
def clone(job_id: str):
    """A new job with this one's parameters; the body's fields replace some of them"""
    _row(job_id)
    overrides = json_object_body() if request.content_length else {}
    folders = clone_job(services().scheduler.folder(job_id), overrides, current_identity())
    return jsonify({"jobs": [_detail(folder.id) for folder in folders]}), 201


@api.delete("/jobs/<job_id>")
@operation({204: None}, errors=(401, 403, 404, 409), query=DeleteQuery)
def delete_job(job_id: str):
    """Delete a job and its folder"""
    require_owner(_row(job_id)["owner"], "delete")
    force = DeleteQuery.parse(request.args.to_dict()).force
    services().scheduler.delete(job_id, force=force)
    return "", 204


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@api.get("/system")
@operation({200: System}, errors=(401,))
def system():
    """GPUs (memory, utilisation, which job holds each), the queue, and versions"""
    svc = services()
    held = {gpu: job_id for job_id, gpus in svc.scheduler.running_gpus().items() for gpu in gpus}
    detected = {gpu.id: gpu for gpu in query_gpus()}
    gpus = []
    for gpu_id in svc.config.gpus or []:
        info = detected[gpu_id].to_dict() if gpu_id in detected else {"id": gpu_id, "name": None}
        gpus.append({**info, "job": held.get(gpu_id)})
    counts = svc.index.count_by_status()
    return jsonify({
        "version": __version__,
        "gpus": gpus,
        "cpu_slots": svc.config.cpu_slots,
        "queue": {str(status): counts.get(str(status), 0) for status in Status},
        "users": "multi-user" if svc.users.has_users() else "single-user",
        "you": current_identity().name,
        "versions": {"digitslite": __version__, "python": platform.python_version(),
                     "flask": _version("flask"), "torch": _version("torch"), "numpy": _version("numpy")},
    })
