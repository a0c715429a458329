"""POST /api/v1/models/{id}/infer: an inference job, answered at once (202) rather than after the work.

Images come from exactly one of: uploaded files (`images`, repeatable), a server folder (`folder`,
inside the data roots) or a dataset job's validation split (`dataset`). The job's results.json and
outputs/ are read with GET /api/v1/jobs/{id} and /files/...
"""
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify
from werkzeug.utils import secure_filename

from digitslite.jobs.model import JobSpec, Status
from digitslite.jobs.runners.inference import IMAGE_SUFFIXES, image_files
from digitslite.server.auth import current_identity
from digitslite.server.create_common import (
    COMMON_FIELDS,
    INPUTS,
    CreateContext,
    copy_inputs,
    gpu_request,
    job_of_kind,
    new_spec,
    request_values,
    snapshot_ref,
    upload_folder,
    uploaded_files,
)
from digitslite.server.errors import ApiError
from digitslite.server.paths import resolve_data_path
from digitslite.server.render import job_summary
from digitslite.server.schemas.openapi import operation
from digitslite.server.schemas.requests import InferenceRequest
from digitslite.server.schemas.responses import Created
from digitslite.server.services import services

inference_api = Blueprint("inference_api", __name__)


def _source(body: InferenceRequest, ctx: CreateContext) -> tuple[dict[str, Any], int | None]:
    """Where the images come from, and how many there are when that is known now."""
    given = [name for name in ("folder", "dataset") if body.has(name)] + (["images"] if ctx.inputs else [])
    if len(given) != 1:
        raise ApiError(422, "give exactly one image source: uploaded images, folder (a server folder) or "
                            f"dataset (a dataset job's validation split); got {', '.join(given) or 'none'}",
                       "images")
    if ctx.inputs is not None:
        return {"source": "upload"}, len(image_files(ctx.inputs))
    if body.folder is not None:
        folder = resolve_data_path(body.folder, ctx.config.data_roots, "folder")
        return {"source": "folder", "folder": str(folder)}, len(image_files(folder))
    dataset = job_of_kind(body.dataset, "dataset", "dataset")
    if dataset.state().status != Status.DONE:
        raise ApiError(422, f"dataset: job {dataset.id} is {dataset.state().status}, not done", "dataset")
    return {"source": "dataset", "dataset": dataset.id}, None


def plan_inference(values: Mapping[str, Any], ctx: CreateContext) -> list[tuple[JobSpec, Any]]:
    body = InferenceRequest.parse(values)
    model = snapshot_ref(body.model, body.snapshot, "model")
    limit = body.limit
    source, count = _source(body, ctx)
    request = body.given(exclude=COMMON_FIELDS)
    params = {"request": request, "model": model, **source, "limit": limit,
              "count": min(count, limit or count) if count is not None else None}
    used = [model["job"]] + ([source["dataset"]] if "dataset" in source else [])
    spec = new_spec("inference", body, ctx, params, default_name=f"inference on {model['job']}",
                    depends_on=used, gpus=gpu_request(body, ctx.config))
    return [(spec, copy_inputs(ctx))]


def _save_images(target: Path) -> int:
    saved = 0
    for number, upload in enumerate(uploaded_files("images")):
        name = secure_filename(upload.filename) or "image"
        if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
            raise ApiError(422, f"images: {upload.filename!r} is not an image file "
                                f"({', '.join(IMAGE_SUFFIXES)})", "images")
        upload.save(target / f"{number:05d}_{name}")
        saved += 1
    return saved


@inference_api.post("/models/<job_id>/infer")
@operation({202: Created}, errors=(401, 403, 413, 422), body=InferenceRequest, files=("images",))
def create_inference_job(job_id: str):
    """Run a model or pretrained job over images (an inference job, answered at once)

    The job uses the model's snapshot `snapshot` (default the newest); its results.json and
    outputs/ are read with GET /jobs/{job_id} and /jobs/{job_id}/files/...
    """
    values = {**request_values(), "model": job_id}
    config = services().config
    with upload_folder(config) as scratch:
        images = scratch / INPUTS
        images.mkdir()
        uploaded = _save_images(images)
        ctx = CreateContext(current_identity(), config, images if uploaded else None, move_inputs=True)
        jobs = plan_inference(values, ctx)
        folders = services().scheduler.submit(jobs)
    return jsonify({"jobs": [job_summary(services().index.get(folder.id)) for folder in folders]}), 202
