"""What every job-creating request shares: name, group, notes, priority, GPUs, and uploaded inputs.

Uploaded files end up in the new job's `inputs/` folder; a job's parameters name them relative to
it, so that a clone copies `inputs/` and means the same files. An uploaded archive that the job
unpacks itself goes to its `upload/` folder instead, and a clone of a job that has not unpacked
it yet copies that.
"""
import contextlib
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import request
from werkzeug.datastructures import FileStorage

from digitslite.jobs.folder import NEW_PREFIX, JobFolder
from digitslite.jobs.job import JobSpec, Status, new_job_id
from digitslite.jobs.scheduler import Prepare
from digitslite.layout import JobFiles
from digitslite.server.auth import Identity
from digitslite.server.config import ServerConfig
from digitslite.server.errors import ApiError
from digitslite.server.schemas.requests import GpuFields, JobFields, StoreImportRequest
from digitslite.server.services import services
from digitslite.server.validators import MAX_JSON_DEPTH, check_json_value

COMMON_FIELDS = tuple(JobFields.model_fields)


@dataclass
class CreateContext:
    identity: Identity
    config: ServerConfig
    inputs: Path | None = None  # becomes the new job's inputs/ folder (an upload, or the cloned job's)
    move_inputs: bool = False  # an upload is moved; a clone's inputs (or archive) are copied
    archive: Path | None = None  # goes into the new job's upload/ folder, for the job to unpack


def json_object_body() -> dict[str, Any]:
    """The request's JSON object, every string in it storable as text."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        raise ApiError(422, f"the body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body is not a JSON object")
    check_json_value(body)
    return body


def request_values() -> Mapping[str, Any]:
    """The request's fields: a JSON object body, or the form fields of a multipart request; every
    string storable as text."""
    if request.is_json:
        return json_object_body()
    form = request.form.to_dict()
    check_json_value(form)
    return form


def new_spec(kind: str, job: JobFields | StoreImportRequest, ctx: CreateContext, params: dict[str, Any], *,
             default_name: str, name: str | None = None, group: str | None = None,
             depends_on: list[str] | None = None, waits_for: list[str] | None = None,
             gpus: int | list[str] = 0, cpu_slots: int = 1) -> JobSpec:
    """The job's spec; `name` and `group` replace the request's (a sweep names each of its jobs)."""
    return JobSpec(
        id=new_job_id(), kind=kind, owner=ctx.identity.name, created=time.time(), params=params,
        name=name or job.name or default_name, group=group or job.group or "", notes=job.notes or "",
        priority=job.priority or 0,
        depends_on=sorted(set(depends_on or [])), waits_for=sorted(set(waits_for or [])), gpus=gpus,
        cpu_slots=cpu_slots)


def gpu_request(body: GpuFields, config: ServerConfig) -> int | list[str]:
    """`gpus`: how many (any free ones), or `gpu_ids`: exactly these; checked against this machine."""
    available = list(config.gpus or [])
    if body.gpu_ids is not None:
        ids = [gpu.strip() for gpu in body.gpu_ids]
        unknown = [gpu for gpu in ids if gpu not in available]
        if unknown or not ids:
            raise ApiError(422, f"gpu_ids: {', '.join(unknown) or 'empty'} not among this machine's GPUs "
                                f"({', '.join(available) or 'none'})", "gpu_ids")
        return sorted(set(ids), key=ids.index)
    count = body.gpus or 0
    if count > len(available):
        raise ApiError(422, f"gpus: {count} asked for but this machine has {len(available)}", "gpus")
    return count


def job_of_kind(job_id: str, kind: str | tuple[str, ...], field: str) -> JobFolder:
    kinds = (kind,) if isinstance(kind, str) else kind
    row = services().index.get(job_id)
    if row is None or row["kind"] not in kinds:
        raise ApiError(422, f"{field}: no {' or '.join(kinds)} job with id {job_id!r}", field)
    return services().scheduler.folder(job_id)


def snapshot_ref(job_id: str, iteration: int | None, field: str) -> dict[str, Any]:
    """A reference to a model job's snapshot, or to a pretrained job's weights, that exists now."""
    folder = job_of_kind(job_id, ("model", "pretrained"), field)
    if folder.spec().kind == "pretrained":
        if folder.state().status != Status.DONE:
            raise ApiError(422, f"{field}: pretrained job {job_id} is not imported yet (it is "
                                f"{folder.state().status})", field)
        return {"kind": "pretrained", "job": job_id}
    iterations = [snap.iteration for snap in folder.snapshots()]
    if not iterations or (iteration is not None and iteration not in iterations):
        have = ", ".join(map(str, iterations)) or "none yet"
        raise ApiError(422, f"{field}: model job {job_id} has no snapshot {iteration or ''} (it has {have})",
                       field)
    return {"kind": "snapshot", "job": job_id, "iteration": iteration}


def copy_inputs(ctx: CreateContext) -> Prepare | None:
    """The step that puts the upload (or the cloned job's inputs, or its archive) into the new job's
    folder."""
    if ctx.inputs is None and ctx.archive is None:
        return None
    inputs, archive = ctx.inputs, ctx.archive

    def prepare(staging: Path) -> None:
        files = JobFiles(staging)
        if archive is not None:
            files.upload_dir.mkdir()
            (shutil.move if ctx.move_inputs else shutil.copyfile)(archive, files.upload_dir / archive.name)
        if inputs is not None:
            if ctx.move_inputs:
                shutil.move(inputs, files.inputs_dir)
            else:
                shutil.copytree(inputs, files.inputs_dir, symlinks=True)
    return prepare


@contextlib.contextmanager
def upload_folder(config: ServerConfig) -> Iterator[Path]:
    """A scratch folder in the jobs directory for an upload; a server killed meanwhile leaves nothing
    behind for long (the next start clears such folders)."""
    path = config.jobs_dir / f"{NEW_PREFIX}upload-{secrets.token_hex(6)}"
    path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def uploaded_files(field: str) -> list[FileStorage]:
    return [upload for upload in request.files.getlist(field) if upload.filename]
