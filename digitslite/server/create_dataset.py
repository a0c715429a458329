"""POST /api/v1/datasets: a dataset job from server-side folders or from an uploaded archive.

The request reads the fields and resolves the paths (cheap, no file is opened); every pixel is the
job's: its first phase checks the folders, and a dataset with errors ends it as failed with the whole
validation report (the job's check_report). See docs/DESIGN-NOTES.md, "Dataset checks run in the job".
An uploaded archive is only saved and listed here (its members checked, nothing unpacked); the job
unpacks it first ("Uploaded archives are unpacked by the job").
"""
import posixpath
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from flask import Blueprint, jsonify
from werkzeug.utils import secure_filename

from digitslite.archives import ArchiveListing, folder_listing, list_archive
from digitslite.datasets.options import MAX_PIXELS
from digitslite.jobs.job import JobSpec
from digitslite.server.auth import current_identity
from digitslite.server.create_common import (
    CreateContext,
    copy_inputs,
    new_spec,
    request_values,
    upload_folder,
    uploaded_files,
)
from digitslite.server.errors import ApiError
from digitslite.server.paths import resolve_data_path
from digitslite.server.render import job_summary
from digitslite.server.schemas.openapi import operation
from digitslite.server.schemas.requests import DatasetRequest
from digitslite.server.schemas.responses import Created
from digitslite.server.services import services
from digitslite.tasks import TASKS
from digitslite.tasks.base import DatasetFields

datasets_api = Blueprint("datasets_api", __name__)

# In an uploaded archive these names are found without being given.
ARCHIVE_DEFAULTS = {"images": "images", "labels": "labels", "val_images": "val_images",
                    "val_labels": "val_labels", "colormap": "colormap.txt", "classes": "classes.txt"}


def _upload_paths(body: DatasetRequest, listing: ArchiveListing,
                  fields: DatasetFields) -> dict[str, str | None]:
    """Paths inside the archive, relative to it, checked against its members; given ones must exist,
    defaults may not."""
    paths: dict[str, str | None] = {}
    for name in fields.paths:
        given = getattr(body, name)
        relative = str(given or ARCHIVE_DEFAULTS[name])
        normal = posixpath.normpath(relative)
        if posixpath.isabs(normal) or normal == ".." or normal.startswith("../"):
            raise ApiError(422, f"{name}: {relative!r} is outside the uploaded archive", name)
        exists = listing.holds(PurePosixPath(normal), folder=name in fields.folders)
        if given and not exists:
            raise ApiError(422, f"{name}: the uploaded archive has no {relative!r}", name)
        paths[name] = normal if exists else None
    if any(paths[name] is None for name in fields.required):
        folders = " and ".join(f"{name}/" for name in fields.required)
        raise ApiError(422, f"the archive must hold the folders {folders} (or name them with the "
                            f"{' and '.join(fields.required)} fields)", "archive")
    for name in fields.lists:
        if getattr(body, name) is not None:
            raise ApiError(422, f"{name}: a list names files on the server; give it with server folders, "
                                "not with an archive", name)
    return paths


def _server_paths(body: DatasetRequest, roots: tuple[Path, ...],
                  fields: DatasetFields) -> dict[str, str | None]:
    """Every path resolved; the problems of all fields at once (a form shows each by its field). The
    task's first list (of pairs) stands in for its required folders."""
    instead = fields.lists[0] if fields.lists else None
    listed = instead is not None and getattr(body, instead) is not None
    if listed and any(getattr(body, name) is not None for name in fields.required):
        raise ApiError(422, f"{instead}: give either {' and '.join(fields.required)} (folders) or {instead}, "
                            "not both", instead)
    paths: dict[str, str | None] = {}
    problems: list[ApiError] = []
    for name in (*fields.paths, *fields.lists):
        raw = getattr(body, name)
        try:
            if raw is None and name in fields.required and not listed:
                alternative = f" (or {instead}: a list of image/label pairs)" if instead else ""
                raise ApiError(422, f"{name} is required{alternative}", name)
            paths[name] = None if raw is None else str(resolve_data_path(raw, roots, name,
                                                                         folder=name in fields.folders))
        except ApiError as exc:
            problems.append(exc)
    if problems:
        raise ApiError(max(problem.status for problem in problems),
                       "; ".join(problem.message for problem in problems), problems[0].field,
                       fields=[{"field": problem.field, "message": problem.message} for problem in problems])
    return paths


def _archive_params(archive: Path, ctx: CreateContext) -> tuple[ArchiveListing, dict[str, Any]]:
    """The archive's listing, checked against the server's limits, and what its job needs to unpack it
    (the same limits, and the declared size, for progress)."""
    limits = {"max_bytes": ctx.config.max_unpack_bytes, "max_members": ctx.config.max_archive_members}
    listing = list_archive(archive, field="archive", **limits)
    return listing, {"name": archive.name, "declared_bytes": listing.declared_bytes, **limits}


def plan_dataset(values: Mapping[str, Any], ctx: CreateContext) -> list[tuple[JobSpec, Any]]:
    body = DatasetRequest.parse(values)
    task = TASKS[body.task]
    fields = task.dataset_fields
    from_upload = ctx.inputs is not None or ctx.archive is not None
    archive: dict[str, Any] | None = None
    if ctx.archive is not None:
        listing, archive = _archive_params(ctx.archive, ctx)
        paths = _upload_paths(body, listing, fields)
    elif ctx.inputs is not None:  # a clone of a job that has unpacked its archive
        paths = _upload_paths(body, folder_listing(ctx.inputs), fields)
    else:
        paths = _server_paths(body, ctx.config.data_roots, fields)
    options = {name: getattr(body, name) for name in fields.options}
    if options["width"] and options["height"] and options["width"] * options["height"] > MAX_PIXELS:
        raise ApiError(422, f"width x height: {options['width']} x {options['height']} is more than "
                            f"{MAX_PIXELS} pixels; resize to a smaller size", "height")
    given = body.given()
    request = {name: given.get(name) for name in (*fields.paths, *fields.lists)} | options
    if "task" in given:
        request["task"] = task.name
    params = {"request": request, "task": task.name, "source": "upload" if from_upload else "server",
              "paths": paths, "options": options, "within": [str(root) for root in ctx.config.data_roots]}
    if archive is not None:
        params["archive"] = archive
    source = None if from_upload else Path(paths["images"] or paths[fields.lists[0]])
    default_name = "uploaded dataset" if source is None else source.parent.name
    return [(new_spec("dataset", body, ctx, params, default_name=default_name), copy_inputs(ctx))]


@datasets_api.post("/datasets")
@operation({201: Created}, errors=(401, 403, 413, 422), body=DatasetRequest, files=("archive",))
def create_dataset_job():
    """Create a dataset from server folders or an uploaded archive (field `archive`)

    The request checks an archive's member list without unpacking it; the job unpacks it, then
    checks the folders: a dataset with problems ends the job as failed, the whole validation report
    in the job's check_report.
    """
    values = request_values()
    archives = uploaded_files("archive")
    config = services().config
    if not archives:
        jobs = plan_dataset(values, CreateContext(current_identity(), config))
        folders = services().scheduler.submit(jobs)
    else:
        if len(archives) > 1:
            raise ApiError(422, "send one archive", "archive")
        with upload_folder(config) as scratch:
            archive_file = scratch / (secure_filename(archives[0].filename or "")[-100:] or "archive")
            archives[0].save(archive_file)
            ctx = CreateContext(current_identity(), config, move_inputs=True, archive=archive_file)
            folders = services().scheduler.submit(plan_dataset(values, ctx))
    return jsonify({"jobs": [job_summary(services().index.get(folder.id)) for folder in folders]}), 201
