"""POST /api/v1/pretrained: import weights as a pretrained job.

Files come as uploads (`deploy`, `weights`, and optionally `network`, `dataset_info`, `classes`,
`colormap`), as one uploaded `archive` (a model download of digitslite, or of DIGITS with its
info.json), or as server paths inside the data roots. The job checks the weights against the
deploy network before anything can use them. Pretrained jobs made from a model store (import,
convolutionalize: digitslite.server.modelstore) are planned again here when cloned.
"""
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify
from werkzeug.utils import secure_filename

from digitslite.archives import extract_archive
from digitslite.errors import UserError
from digitslite.jobs.job import JobSpec
from digitslite.jobs.kinds.pretrained import FILE_ROLES, checked_deploy, checked_weights
from digitslite.layout import DATASET_INFO_FILE, DEPLOY_FILE, INPUTS_DIR, NETWORK_FILE
from digitslite.server.auth import current_identity
from digitslite.server.create_common import (
    COMMON_FIELDS,
    CreateContext,
    copy_inputs,
    new_spec,
    request_values,
    upload_folder,
    uploaded_files,
)
from digitslite.server.errors import ApiError
from digitslite.server.modelstore.plans import plan_convolutionalize, plan_store_import
from digitslite.server.paths import resolve_data_path
from digitslite.server.render import job_summary
from digitslite.server.schemas.openapi import operation
from digitslite.server.schemas.requests import PretrainedRequest
from digitslite.server.schemas.responses import Created
from digitslite.server.services import services

pretrained_api = Blueprint("pretrained_api", __name__)

REQUIRED_ROLES = ("deploy", "weights")
# What an unpacked model archive calls each file: ours first, then DIGITS' info.json keys.
ARCHIVE_NAMES = {"deploy": (DEPLOY_FILE,), "network": (NETWORK_FILE,), "dataset_info": (DATASET_INFO_FILE,),
                 "classes": ("labels.txt", "classes.txt"),
                 "colormap": ("colormap.txt",)}
DIGITS_INFO_KEYS = {"deploy": "deploy file", "weights": "snapshot file", "classes": "labels file"}


def _archive_files(inputs: Path) -> dict[str, str | None]:
    """Each role's file in an unpacked archive (which may hold one top folder), relative to `inputs`."""
    entries = list(inputs.iterdir())
    root = entries[0] if len(entries) == 1 and entries[0].is_dir() else inputs
    info = json.loads((root / "info.json").read_text()) if (root / "info.json").is_file() else {}
    found: dict[str, str | None] = {}
    for role in FILE_ROLES:
        named = info.get(DIGITS_INFO_KEYS.get(role, ""))
        names = ((Path(named).name,) if isinstance(named, str) else ()) + ARCHIVE_NAMES.get(role, ())
        if role == "weights":
            names += tuple(sorted(path.name for path in root.glob("*.caffemodel")))
        match = next((name for name in names if (root / name).is_file()), None)
        found[role] = None if match is None else str((root / match).relative_to(inputs))
    return found


def _upload_path(body: PretrainedRequest, role: str, inputs: Path) -> str | None:
    """A file of the upload, named relative to it; nothing outside it."""
    relative = getattr(body, role)
    if relative is None:
        return None
    target = (inputs / relative).resolve()
    if not target.is_relative_to(inputs.resolve()) or not target.is_file():
        raise ApiError(422, f"{role}: the upload has no file {relative!r}", role)
    return relative


def _check_files(deploy_file: Path, weights_file: Path) -> None:
    """Refuse, before any job exists, a deploy net that `net check` rejects and weights that do not
    fit it (the job checks them again when it installs them)."""
    try:
        deploy = checked_deploy(deploy_file)
    except UserError as exc:
        raise ApiError(422, f"deploy: {exc}", "deploy") from None
    try:
        checked_weights(deploy, deploy_file.name, weights_file)
    except UserError as exc:
        raise ApiError(422, f"weights: {exc}", "weights") from None


def plan_pretrained(values: Mapping[str, Any], ctx: CreateContext) -> list[tuple[JobSpec, Any]]:
    """Any pretrained job's request, told apart by its fields: what cloning plans again."""
    if values.get("store"):
        return plan_store_import(values, ctx)
    if values.get("classifier"):
        return plan_convolutionalize(values, ctx)
    return plan_files(values, ctx)


def plan_files(values: Mapping[str, Any], ctx: CreateContext) -> list[tuple[JobSpec, Any]]:
    """Weights and deploy network (and the optional files) uploaded or named on the server."""
    body = PretrainedRequest.parse(values)
    if ctx.inputs is not None:
        files = {role: _upload_path(body, role, ctx.inputs) for role in FILE_ROLES}
        source = "upload"
    else:
        files = {role: None if getattr(body, role) is None else str(resolve_data_path(
            getattr(body, role), ctx.config.data_roots, role, folder=False)) for role in FILE_ROLES}
        source = "server"
    for role in REQUIRED_ROLES:
        if files[role] is None:
            what = "the deploy prototxt" if role == "deploy" else "the .caffemodel"
            raise ApiError(422, f"{role} is required ({what})", role)
    _check_files(*(Path(files[role]) if ctx.inputs is None else ctx.inputs / files[role]
                   for role in REQUIRED_ROLES))
    params = {"request": body.given(exclude=COMMON_FIELDS), "source": source, "files": files}
    spec = new_spec("pretrained", body, ctx, params, default_name=Path(files["weights"]).stem)
    return [(spec, copy_inputs(ctx))]


@pretrained_api.post("/pretrained")
@operation({201: Created}, errors=(401, 403, 413, 422), body=PretrainedRequest,
           files=("archive", *FILE_ROLES))
def create_pretrained_job():
    """Import weights with their deploy network (uploads, an archive, or server paths)"""
    given = request_values()
    config = services().config
    archives = uploaded_files("archive")
    singles = {role: uploaded_files(role) for role in FILE_ROLES}
    if not archives and not any(singles.values()):
        return submitted(plan_files(given, CreateContext(current_identity(), config)))
    with upload_folder(config) as scratch:
        inputs = scratch / INPUTS_DIR
        inputs.mkdir()
        values = {key: given[key] for key in COMMON_FIELDS if given.get(key) not in (None, "")}
        if archives:
            archive = scratch / "archive"
            archives[0].save(archive)
            extract_archive(archive, inputs, max_bytes=config.max_unpack_bytes, field="archive",
                            max_members=config.max_archive_members)
            values |= _archive_files(inputs)
        for role, uploads in singles.items():
            if uploads:
                name = secure_filename(uploads[0].filename) or role
                (inputs / role).mkdir()
                uploads[0].save(inputs / role / name)
                values[role] = f"{role}/{name}"
        ctx = CreateContext(current_identity(), config, inputs, move_inputs=True)
        return submitted(plan_files(values, ctx))


def submitted(jobs: list[tuple[JobSpec, Any]]):
    """Queue the planned jobs; answer 201 with their summaries."""
    folders = services().scheduler.submit(jobs)
    return jsonify({"jobs": [job_summary(services().index.get(folder.id)) for folder in folders]}), 201
