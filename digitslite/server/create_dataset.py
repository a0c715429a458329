"""POST /api/v1/datasets: a dataset job from server-side folders or from an uploaded archive.

The request reads the fields and resolves the paths (cheap, no file is opened); every pixel is the
job's: its first phase checks the folders, and a dataset with errors ends it as failed with the whole
validation report (the job's check_report). See docs/DESIGN-NOTES.md, "Dataset checks run in the job".
"""
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify

from digitslite.datasets.options import MAX_PIXELS
from digitslite.jobs.job import JobSpec
from digitslite.jobs.kinds.dataset import FILE_FIELDS, FOLDER_FIELDS, LIST_FIELDS
from digitslite.layout import INPUTS_DIR
from digitslite.server.archives import extract_archive
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
from digitslite.tasks import DEFAULT_TASK

datasets_api = Blueprint("datasets_api", __name__)

# In an uploaded archive these names are found without being given.
ARCHIVE_DEFAULTS = {"images": "images", "labels": "labels", "val_images": "val_images",
                    "val_labels": "val_labels", "colormap": "colormap.txt", "classes": "classes.txt"}
OPTION_FIELDS = ("val_percent", "label_mode", "nearest", "ignore_label", "encoding", "resize", "width",
                 "height", "seed", "allow_empty_classes")


def _upload_paths(body: DatasetRequest, root: Path) -> dict[str, str | None]:
    """Paths inside the unpacked archive, relative to it; given ones must exist, defaults may not."""
    paths: dict[str, str | None] = {}
    for name in (*FOLDER_FIELDS, *FILE_FIELDS):
        given = getattr(body, name)
        relative = given or ARCHIVE_DEFAULTS[name]
        target = (root / relative).resolve()
        if not target.is_relative_to(root.resolve()):
            raise ApiError(422, f"{name}: {relative!r} is outside the uploaded archive", name)
        exists = target.is_dir() if name in FOLDER_FIELDS else target.is_file()
        if given and not exists:
            raise ApiError(422, f"{name}: the uploaded archive has no {relative!r}", name)
        paths[name] = relative if exists else None
    if paths["images"] is None or paths["labels"] is None:
        raise ApiError(422, "the archive must hold the folders images/ and labels/ (or name them with the "
                            "images and labels fields)", "archive")
    for name in LIST_FIELDS:
        if getattr(body, name) is not None:
            raise ApiError(422, f"{name}: a list names files on the server; give it with server folders, "
                                "not with an archive", name)
    return paths


def _server_paths(body: DatasetRequest, roots: tuple[Path, ...]) -> dict[str, str | None]:
    """Every path resolved; the problems of all fields at once (a form shows each by its field)."""
    if body.train_list is not None and (body.images is not None or body.labels is not None):
        raise ApiError(422, "train_list: give either images and labels (folders) or train_list, not both",
                       "train_list")
    paths: dict[str, str | None] = {}
    problems: list[ApiError] = []
    for name in (*FOLDER_FIELDS, *FILE_FIELDS, *LIST_FIELDS):
        raw = getattr(body, name)
        try:
            if raw is None and name in ("images", "labels") and body.train_list is None:
                raise ApiError(422, f"{name} is required (or train_list: a list of image/label pairs)", name)
            paths[name] = None if raw is None else str(resolve_data_path(raw, roots, name,
                                                                         folder=name in FOLDER_FIELDS))
        except ApiError as exc:
            problems.append(exc)
    if problems:
        raise ApiError(max(problem.status for problem in problems),
                       "; ".join(problem.message for problem in problems), problems[0].field,
                       fields=[{"field": problem.field, "message": problem.message} for problem in problems])
    return paths


def plan_dataset(values: Mapping[str, Any], ctx: CreateContext) -> list[tuple[JobSpec, Any]]:
    body = DatasetRequest.parse(values)
    from_upload = ctx.inputs is not None
    paths = _upload_paths(body, ctx.inputs) if from_upload else _server_paths(body, ctx.config.data_roots)
    options = {name: getattr(body, name) for name in OPTION_FIELDS}
    if options["width"] and options["height"] and options["width"] * options["height"] > MAX_PIXELS:
        raise ApiError(422, f"width x height: {options['width']} x {options['height']} is more than "
                            f"{MAX_PIXELS} pixels; resize to a smaller size", "height")
    given = body.given()
    request = {name: given.get(name) for name in (*FOLDER_FIELDS, *FILE_FIELDS, *LIST_FIELDS)} | options
    params = {"request": request, "task": DEFAULT_TASK.name, "source": "upload" if from_upload else "server",
              "paths": paths, "options": options, "within": [str(root) for root in ctx.config.data_roots]}
    source = None if from_upload else Path(paths["images"] or paths["train_list"])
    default_name = "uploaded dataset" if source is None else source.parent.name
    return [(new_spec("dataset", body, ctx, params, default_name=default_name), copy_inputs(ctx))]


@datasets_api.post("/datasets")
@operation({201: Created}, errors=(401, 403, 413, 422), body=DatasetRequest, files=("archive",))
def create_dataset_job():
    """Create a dataset from server folders or an uploaded archive (field `archive`)

    The job checks the folders first: a dataset with problems ends the job as failed, the whole
    validation report in the job's check_report.
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
            archive_file = scratch / "archive"
            archives[0].save(archive_file)
            content = scratch / INPUTS_DIR
            content.mkdir()
            extract_archive(archive_file, content, max_bytes=config.max_unpack_bytes, field="archive",
                            max_members=config.max_archive_members)
            archive_file.unlink()
            jobs = plan_dataset(values, CreateContext(current_identity(), config, content, move_inputs=True))
            folders = services().scheduler.submit(jobs)
    return jsonify({"jobs": [job_summary(services().index.get(folder.id)) for folder in folders]}), 201
