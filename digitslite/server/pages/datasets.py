"""Dataset pages: the New dataset form (with its Check and path completion) and a dataset's page
(summary, classes, the explore gallery of its LMDB records, the creation log, models trained on it)."""

import itertools
from pathlib import Path

import numpy as np
from flask import Response, abort, jsonify, render_template, request, url_for

from digitslite.datasets.colorize.bins import BIN_CHOICES
from digitslite.datasets.colorize.colour import SPACES
from digitslite.datasets.options import ENCODINGS, LABEL_MODES, RESIZE_MODES
from digitslite.datasets.reader import read_record
from digitslite.jobs.kinds.dataset import check_report
from digitslite.server.auth import current_identity
from digitslite.server.check_tasks import MAX_RUNNING, ChecksBusyError
from digitslite.server.create_common import CreateContext
from digitslite.server.create_dataset import plan_dataset
from digitslite.server.errors import ApiError
from digitslite.server.pages.blueprint import pages, pages_api
from digitslite.server.pages.completion import complete_path
from digitslite.server.pages.jobfiles import dataset_job_info, log_tail
from digitslite.server.pages.records import (
    image_mimetype,
    label_indices,
)
from digitslite.server.pages.view import PAGE_OF_KIND, page_job, whole_arg
from digitslite.server.services import services
from digitslite.tasks import TASKS, task_of

GALLERY_PER_PAGE = 12
STAGES = ("train", "val")
RECORD_CACHE_S = 86_400  # records never change once written
DEMO_FOLDER = "demo"  # where `make run` writes the demo scenes, inside the first data root


def demo_folders() -> dict[str, str] | None:
    """The demo scenes' folders in a data root (as `make run` writes them), as the form's fields."""
    for root in services().config.data_roots:
        demo = root / DEMO_FOLDER
        if (demo / "images").is_dir() and (demo / "labels").is_dir():
            fields = {name: str(demo / name) for name in ("images", "labels", "val_images", "val_labels")
                      if (demo / name).is_dir()}
            classes = demo / "classes.txt"
            return fields | ({"classes": str(classes)} if classes.is_file() else {})
    return None


@pages.get("/datasets/new")
def new_dataset():
    """The form; ?clone=ID fills it with that dataset job's request, ?demo=1 with the demo folders."""
    values, uploaded = {}, False
    if request.args.get("demo"):
        values = {"name": "demo scenes", **(demo_folders() or {})}
    if request.args.get("clone"):
        _, folder = page_job(request.args["clone"], "dataset")
        spec = folder.spec()
        values = {**spec.params.get("request", {}), "name": f"{spec.name} (clone)", "group": spec.group,
                  "notes": spec.notes}
        uploaded = spec.params.get("source") == "upload"
        if uploaded:  # its paths name files inside that upload, not server folders
            paths = task_of(spec.params).dataset_fields.paths
            values = {key: value for key, value in values.items() if key not in paths}
    return render_template("datasets/new.html", values=values, uploaded=uploaded, label_modes=LABEL_MODES,
                           encodings=ENCODINGS, resize_modes=RESIZE_MODES, tasks=TASKS,
                           task_fields=TASK_OWN_FIELDS, spaces=SPACES, bin_choices=BIN_CHOICES,
                           roots=[str(root) for root in services().config.data_roots])


def _own_fields() -> dict[str, list[str]]:
    """Each task's form fields that not every task has: the form hides and leaves out the others'."""
    names = {name: set(task.dataset_fields.names) for name, task in TASKS.items()}
    shared = set.intersection(*names.values())
    return {name: sorted(own - shared) for name, own in names.items()}


TASK_OWN_FIELDS = _own_fields()


@pages.get("/datasets/<job_id>")
def dataset(job_id: str):
    row, folder = page_job(job_id, "dataset")
    spec, info = folder.spec(), dataset_job_info(folder)
    task = task_of(info or spec.params)
    stage = request.args.get("stage") if request.args.get("stage") in STAGES else "train"
    count = (info or {}).get("counts", {}).get(stage, 0)
    gallery_pages = max(1, -(-count // GALLERY_PER_PAGE))
    page = min(whole_arg("gallery", 1), gallery_pages)
    names = records_of(folder.dataset.path, stage, (page - 1) * GALLERY_PER_PAGE, GALLERY_PER_PAGE, info)
    index = services().index
    models = [model for model in map(index.get, index.dependents(job_id))
              if model and model["kind"] == "model"]
    log, log_end = log_tail(folder)
    context = task.part("pages").dataset_context(info) if info else {}
    return render_template("datasets/dataset.html", row=row, spec=spec, state=folder.state(),
                           info=info, task=task, check_report=check_report(folder.path), stage=stage,
                           names=names,
                           gallery_page=page, gallery_pages=gallery_pages, models=models, log=log,
                           log_end=log_end, page_of_kind=PAGE_OF_KIND, **context)


def records_of(dataset_dir: Path, stage: str, first: int, count: int, info: dict | None) -> dict[int, str]:
    """The records first..first+count-1 of a split, in order, by position (a skipped photo leaves its
    key unused) with the image file each was made from: the split's list, <stage>.txt, holds key and
    image (and label) per line; a name is relative to its images folder where it lies inside it."""
    listing = dataset_dir / f"{stage}.txt"
    if info is None or not listing.is_file():
        return {}
    sources = info.get("sources") or {}
    folders = [Path(sources[key]) for key in ("images", "val_images") if sources.get(key)]
    names = {}
    with open(listing, encoding="utf-8") as lines:
        for line in itertools.islice(lines, first, first + count):
            key, image = line.rstrip("\n").split("\t")[:2]
            inside = next((Path(image).relative_to(folder) for folder in folders
                           if Path(image).is_relative_to(folder)), None)
            names[int(key)] = str(inside or Path(image).name)
    return names


@pages_api.get("/datasets/<job_id>/records/<stage>/<int:position>/classes.json")
def dataset_record_classes(job_id: str, stage: str, position: int):
    """The class values a label record holds, for the legend of the record's large view."""
    _, folder = page_job(job_id, "dataset")
    serialized = None
    if stage in STAGES:
        serialized = read_record(folder.dataset.path, stage, "labels", position)
    if serialized is None:
        raise ApiError(404, f"dataset {job_id} has no {stage} label record {position}")
    return jsonify({"classes": np.unique(label_indices(serialized)).tolist()})


@pages_api.get("/paths")
def paths():
    """?prefix=...&files=1: completions inside the data roots."""
    found = complete_path(request.args.get("prefix", ""), services().config.data_roots,
                          folders_only=request.args.get("files") != "1")
    return jsonify({"paths": found})


@pages_api.post("/dataset-check")
def dataset_check():
    """Start the dry run of the New dataset form's fields (server folders); 202 with the URL to poll.

    The fields are read and refused exactly as POST /api/v1/datasets reads them; nothing is created.
    The check itself runs in its own process (check_tasks), never in this request.
    """
    values = request.form.to_dict()
    [(spec, _)] = plan_dataset(values, CreateContext(current_identity(), services().config))
    try:
        check_id = services().checks.start(spec.params, services().config.jobs_dir)
    except ChecksBusyError:
        raise ApiError(429, f"{MAX_RUNNING} checks are running on this server; press Check again when "
                            "one has finished") from None
    return jsonify({"check": check_id, "poll": url_for(".dataset_check_result",
                                                       check_id=check_id)}), 202


@pages_api.get("/dataset-check/<check_id>")
def dataset_check_result(check_id: str):
    """202 while the check runs; then once: the report and the first pairs, or the error (422)."""
    try:
        result = services().checks.result(check_id)
    except KeyError:
        raise ApiError(404, f"no running check {check_id!r}; press Check again") from None
    if result is None:
        return jsonify({"running": True}), 202
    return jsonify(result), 422 if "error" in result else 200


@pages_api.get("/datasets/<job_id>/records/<stage>/<int:position>/<part>")
def dataset_record(job_id: str, stage: str, position: int, part: str):
    """A record as an image, one of the parts its task's record names: `image` and, for segmentation,
    `label` (class colours) or `classes` (indices as gray values), for colorization `colour` (the
    stored lightness and chroma back in sRGB)."""
    _, folder = page_job(job_id, "dataset")
    info = dataset_job_info(folder)
    task = task_of(info or {})
    if info is None or stage not in STAGES or part not in task.record_parts:
        raise ApiError(404, f"dataset {job_id} has no {stage} {part} record {position}")
    data = task.part("pages").record_picture(folder.dataset.path, info, stage, position, part)
    if data is None:
        abort(404, f"dataset {job_id} has no {stage} record {position}")
    response = Response(data, mimetype=image_mimetype(data))
    response.cache_control.max_age = RECORD_CACHE_S
    response.cache_control.private = True
    return response
