"""A colorization inference job's page: per image the grey input, the colourised picture and the
original, with per-image PSNR; a net over ab bins is decoded again at the temperature the page's
slider asks for, from the distribution the job stored (the net does not run again)."""
import math
from pathlib import Path
from typing import Any

from flask import Response, abort, render_template, request, send_file

from digitslite.engine.colorization.coding import StoredColours, stored_colours
from digitslite.jobs.colourise import recolour
from digitslite.jobs.folder import JobFolder
from digitslite.server.pages.blueprint import pages_api
from digitslite.server.pages.jobfiles import read_json_if_present
from digitslite.server.pages.records import png
from digitslite.server.pages.view import page_job
from digitslite.server.services import services

PARTS = ("grey", "colourised", "original")
HOTTEST = 2.0   # the slider's range of temperatures: (0, HOTTEST]


def render_colorization(results: dict[str, Any], images: list[dict[str, Any]], **context: Any) -> str:
    """The inference page of a colorization job, for the results on this page."""
    return render_template("inference/colorization.html", results=results, images=images,
                           hottest=HOTTEST, **context)


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
        import numpy as np
        from PIL import Image

        with Image.open(folder.path / entry["lightness"]) as image:
            lightness = np.asarray(image.convert("L"))
        distribution = np.load(folder.path / entry["distribution"])
        picture = recolour(_coding(folder), lightness, distribution, _temperature())
        saved = request.args.get("download")
        headers = {"Content-Disposition": f'attachment; filename="{name}"'} if saved else {}
        return Response(png(picture), mimetype="image/png", headers=headers)
    return send_file(folder.path / entry[part], mimetype="image/png",
                     as_attachment=bool(request.args.get("download")), download_name=name)
