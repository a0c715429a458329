"""Colorization's parts of the pages (named by its task record): the form's Check, a dataset's kept bins
and stored colours, and an inference job's grey | colourised | original pictures, where a net over ab
bins is decoded again at the temperature the page's slider asks for, from the distribution the job
stored (the net does not run again)."""
import math
from pathlib import Path
from typing import Any

import numpy as np
from flask import Response, abort, request, send_file
from PIL import Image

from digitslite.datasets.colorize.colour import COLOUR_SPACES
from digitslite.datasets.colorize.create import check_colorize
from digitslite.datasets.colorize.options import ColorizeOptions
from digitslite.datasets.reader import read_record
from digitslite.datasets.records import datum_array
from digitslite.engine.colorization.coding import StoredColours, stored_colours
from digitslite.jobs.colourise import recolour
from digitslite.jobs.folder import JobFolder
from digitslite.server.pages.blueprint import pages_api
from digitslite.server.pages.dataset_preview import with_refusal
from digitslite.server.pages.jobfiles import read_json_if_present
from digitslite.server.pages.records import image_bytes, png
from digitslite.server.pages.view import page_job
from digitslite.server.services import services

PARTS = ("grey", "colourised", "original")
HOTTEST = 2.0   # the slider's range of temperatures: (0, HOTTEST]
TOP_BINS = 12


def form_check(options: ColorizeOptions) -> dict[str, Any]:
    """The form's Check: the report (with its chroma histogram picture); photos have no pairs to preview."""
    return with_refusal(check_colorize(options), [])


def dataset_context(info: dict[str, Any]) -> dict[str, Any]:
    """What the dataset page's summary shows besides dataset.json: the most frequent kept bins."""
    bins = info.get("bins")
    if not bins:
        return {"top_bins": []}
    total = sum(bins["pixels"]) or 1
    order = sorted(range(bins["count"]), key=lambda index: -bins["pixels"][index])[:TOP_BINS]
    centres = bins["centres"]
    return {"top_bins": [{"index": index, "a": round(centres[index][0], 1), "b": round(centres[index][1], 1),
                          "share": bins["pixels"][index] / total, "weight": bins["weights"][index]}
                         for index in order]}


def record_picture(dataset_dir: Path, info: dict[str, Any], stage: str, position: int,
                   part: str) -> bytes | None:
    """A record's `image` (the lightness plane) or `colour` (lightness and chroma back in sRGB)."""
    lightness = read_record(dataset_dir, stage, "features", position)
    if lightness is None or part == "image":
        return None if lightness is None else image_bytes(lightness)
    chroma = read_record(dataset_dir, stage, "chroma", position)
    if chroma is None:
        return None
    space = COLOUR_SPACES[info["colour_space"]["name"]]
    return png(space.rgb_from_stored(datum_array(lightness)[0], datum_array(chroma).transpose(1, 2, 0)))


def inference_context(folder: JobFolder, results: dict[str, Any],
                      shown: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """The inference page's pictures of this page's results, and the temperature slider's range."""
    return {"images": [{"number": number, **entry} for number, entry in shown], "hottest": HOTTEST}


def _coding(folder: JobFolder) -> StoredColours:
    """The colour coding of the model the inference job ran."""
    model = services().scheduler.folder(folder.spec().params["model"]["job"])
    info = read_json_if_present(model.dataset_info_file)
    coding = None if info is None else stored_colours(info)
    if coding is None:
        abort(404, "the model of this inference job has no colorization dataset description")
    return coding


def _temperature() -> float:
    value = request.args.get("temperature", type=float)
    if value is None or not math.isfinite(value) or not 0 < value <= HOTTEST:
        abort(400, f"temperature must be a number above 0 and at most {HOTTEST}")
    return value


@pages_api.get("/inference/<job_id>/colour/<int:number>/<part>")
def colorization_image(job_id: str, number: int, part: str):
    """Picture `part` (grey, colourised, original) of result `number`; the colourised one of a net over
    ab bins decoded at ?temperature= when given; ?download=1 saves it as a file."""
    _, folder = page_job(job_id, "inference")
    results = read_json_if_present(folder.results_file)
    if results is None or part not in PARTS or number >= len(results["images"]) \
            or part not in results["images"][number]:
        abort(404, f"inference job {job_id} has no {part} picture for image {number}")
    entry = results["images"][number]
    name = f"{Path(entry['input']).stem}_{part}.png"
    if part == "colourised" and "temperature" in request.args and "distribution" in entry:
        with Image.open(folder.path / entry["lightness"]) as image:
            lightness = np.asarray(image.convert("L"))
        distribution = np.load(folder.path / entry["distribution"])
        picture = recolour(_coding(folder), lightness, distribution, _temperature())
        saved = request.args.get("download")
        headers = {"Content-Disposition": f'attachment; filename="{name}"'} if saved else {}
        return Response(png(picture), mimetype="image/png", headers=headers)
    return send_file(folder.path / entry[part], mimetype="image/png",
                     as_attachment=bool(request.args.get("download")), download_name=name)
