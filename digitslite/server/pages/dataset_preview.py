"""The dataset form's Check: the dry run's report, plus the first image/label pairs decoded with
their class colours, so a user sees what the labels will mean before anything is created."""
import base64
import io
from typing import Any

import numpy as np
from PIL import Image

from digitslite.datasets import DatasetOptions
from digitslite.datasets.controls import as_fields
from digitslite.datasets.labels import LabelDecoder
from digitslite.datasets.pairing import Pair
from digitslite.datasets.problems import KINDS
from digitslite.datasets.scan import make_plan, scan
from digitslite.viz.palette import colorize, extend_palette

PREVIEW_PAIRS = 4
PREVIEW_SIDE = 320  # pixels; larger images are shrunk to fit


def _data_uri(image: Image.Image) -> str:
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _preview(stage: str, pair: Pair, decoder: LabelDecoder, palette: np.ndarray) -> dict[str, Any]:
    shown: dict[str, Any] = {"stage": stage, "name": pair.name}
    try:
        with Image.open(pair.image) as image, Image.open(pair.label) as label:
            label.load()
            decoded, found = decoder.decode(label, pair.label)
            shown["size"] = list(image.size)
            shown["image"] = _data_uri(image.convert("RGB"))
            shown["problems"] = [KINDS[kind].what for kind, _ in found]
            if decoded is None:  # the label as it is stored, to see what is wrong with it
                shown["label"] = _data_uri(label.convert("RGB"))
            else:
                shown["label"] = _data_uri(Image.fromarray(colorize(decoded.indices, palette)))
                shown["classes"] = [int(value) for value in np.flatnonzero(decoded.histogram)]
    except Exception as exc:  # any Pillow failure: the report lists the file as unreadable
        return shown | {"problems": [f"cannot be read: {type(exc).__name__}"]}
    return shown


def check_with_previews(options: DatasetOptions) -> dict[str, Any]:
    """{"report": the ValidationReport as a dict, "previews": the first pairs, decoded}; a report with
    errors also brings "refusal", the form's error line (message, and template for the page's labels)."""
    plan = make_plan(options)
    report = scan(plan, None).report
    palette = extend_palette([stat.colour for stat in report.classes])
    palette[report.ignore_label] = (255, 255, 255)
    pairs = [(stage, pair) for stage in ("train", "val") for pair in plan.stages[stage]][:PREVIEW_PAIRS]
    return with_refusal(report, [_preview(stage, pair, plan.decoder, palette) for stage, pair in pairs])


def with_refusal(report: Any, previews: list[dict[str, Any]]) -> dict[str, Any]:
    """The form's Check result of any task's report: with errors it also brings "refusal", the form's
    error line (message, and template for the page's labels)."""
    result = {"report": report.to_dict(), "previews": previews}
    if not report.ok:
        result["refusal"] = {"message": f"the dataset has errors: {report.summary_line(as_fields)}",
                             "template": f"the dataset has errors: {report.summary_line(str)}", "field": None}
    return result
