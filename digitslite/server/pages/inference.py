"""Inference pages: the form that queues an inference job (uploaded images, a server folder or a
dataset's validation images), and an inference job's page, where each result shows input, overlay
and ground truth side by side, composited in the browser (overlay.js) from class-index images."""
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from flask import Response, abort, render_template, send_file
from PIL import Image

from digitslite.datasets.reader import read_record
from digitslite.jobs.folder import JobFolder
from digitslite.jobs.index import JobFilter
from digitslite.jobs.job import Status
from digitslite.server.pages.blueprint import pages, pages_api
from digitslite.server.pages.jobfiles import log_tail, read_json_if_present
from digitslite.server.pages.records import image_bytes, image_mimetype, png
from digitslite.server.pages.segmentation import dataset_dir, prediction, truth
from digitslite.server.pages.view import PAGE_OF_KIND, page_job, whole_arg
from digitslite.server.services import services
from digitslite.tasks import task_of

RESULTS_PER_PAGE = 8
BROWSER_IMAGES = (".png", ".jpg", ".jpeg", ".bmp")
PARTS = ("input", "prediction", "truth")


@pages.get("/infer/<job_id>")
def infer_form(job_id: str):
    """Run a model (a model job's snapshot, or a pretrained job) on images."""
    row, folder = page_job(job_id)
    if row["kind"] not in ("model", "pretrained"):
        abort(404, f"Job {job_id} is a {row['kind']} job; only models and pretrained models run on images.")
    spec = folder.spec()
    done = services().index.list(JobFilter(kind="dataset", status=Status.DONE), per_page=100)[0]
    own = spec.params.get("dataset")  # a model's own dataset comes first
    datasets = sorted(done, key=lambda dataset: dataset["id"] != own)
    return render_template("inference/new.html", row=row, spec=spec, snapshots=folder.snapshots(),
                           datasets=datasets, page_of_kind=PAGE_OF_KIND,
                           roots=[str(root) for root in services().config.data_roots])


@pages.get("/inference/<job_id>")
def inference(job_id: str):
    row, folder = page_job(job_id, "inference")
    spec, state = folder.spec(), folder.state()
    results = read_json_if_present(folder.results_file) if state.status == Status.DONE else None
    pages_count, page, shown = 1, 1, []
    if results:
        pages_count = max(1, -(-len(results["images"]) // RESULTS_PER_PAGE))
        page = min(whole_arg("page", 1), pages_count)
        first = (page - 1) * RESULTS_PER_PAGE
        shown = list(enumerate(results["images"][first:first + RESULTS_PER_PAGE], start=first))
    # The task that made the results (results.json names it; older jobs' results are segmentation's).
    task = task_of(results or {})
    context = task.part("pages").inference_context(folder, results, shown) if results else {}
    log, log_end = log_tail(folder)
    return render_template("inference/inference.html", row=row, spec=spec, state=state, results=results,
                           page=page, pages_count=pages_count, task=task,
                           model=services().index.get(spec.params["model"]["job"]),
                           page_of_kind=PAGE_OF_KIND, log=log, log_end=log_end, **context)


def _input_image(folder: JobFolder, params: dict[str, Any], entry: dict[str, Any]) -> Response:
    name = entry["input"]
    if "input_copy" in entry:
        return send_file(folder.path / entry["input_copy"])
    if params["source"] == "dataset":
        if services().index.get(params["dataset"]) is None:
            abort(404, f"the dataset of validation image {name} was deleted")
        serialized = read_record(dataset_dir(params), "val", "features", int(name))
        if serialized is None:
            abort(404, f"the dataset has no validation record {name}")
        data = image_bytes(serialized)
        return Response(data, mimetype=image_mimetype(data))
    root = (folder.inputs_dir if params["source"] == "upload" else Path(params["folder"])).resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        abort(404, f"the input {name} is gone")
    if path.suffix.lower() in BROWSER_IMAGES:
        return send_file(path)
    with Image.open(path) as image:  # a format browsers do not show (TIFF, PPM, ...)
        return Response(png(np.asarray(image.convert("RGB"))), mimetype="image/png")


@pages_api.get("/inference/<job_id>/images/<int:number>/<part>")
def inference_image(job_id: str, number: int, part: str):
    """An image of result `number`: the `input`, or the `prediction` / `truth` as class indices."""
    _, folder = page_job(job_id, "inference")
    results = read_json_if_present(folder.results_file)
    if results is None or part not in PARTS or number >= len(results["images"]):
        abort(404, f"inference job {job_id} has no {part} for image {number}")
    entry, params = results["images"][number], folder.spec().params
    if part == "input":
        return _input_image(folder, params, entry)
    indices = prediction(folder, entry) if part == "prediction" else truth(folder, params, entry)
    if indices is None:
        abort(404, f"image {number} of inference job {job_id} has no ground truth")
    return Response(png(indices.astype(np.uint8)), mimetype="image/png")


def _archive_name(entry: dict[str, Any], kind: str) -> str:
    """Where a result's file goes in the zip: masks/ or overlays/, named after its input."""
    return f"{kind}/{Path(entry['input']).with_suffix('.png')}"


@pages_api.get("/inference/<job_id>/download.zip")
def inference_download(job_id: str):
    """Every predicted mask (class colours) and overlay of an inference job, as one zip."""
    _, folder = page_job(job_id, "inference")
    results = read_json_if_present(folder.results_file)
    if results is None:
        abort(404, f"inference job {job_id} has no results yet")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zipped:  # PNGs are compressed already
        for entry in results["images"]:
            zipped.write(folder.path / entry["prediction"], _archive_name(entry, "masks"))
            zipped.write(folder.path / entry["overlay"], _archive_name(entry, "overlays"))
    archive.seek(0)
    return send_file(archive, mimetype="application/zip", as_attachment=True,
                     download_name=f"{job_id}-predictions.zip")
