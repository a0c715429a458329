"""Segmentation's parts of the pages (named by its task record): the form's Check with the first pairs
decoded, a dataset record's image and label, and an inference job's masks, truth and legend."""
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from digitslite.datasets import DatasetOptions
from digitslite.datasets.reader import read_record
from digitslite.jobs.folder import JobFolder
from digitslite.server.pages.dataset_preview import check_with_previews
from digitslite.server.pages.records import image_bytes, label_indices, label_png, painting_palette
from digitslite.server.pages.scores import image_scores
from digitslite.server.services import services
from digitslite.viz.palette import extend_palette


def form_check(options: DatasetOptions) -> dict[str, Any]:
    """The form's Check: the report and the first pairs, decoded with their class colours."""
    return check_with_previews(options)


def dataset_context(info: dict[str, Any]) -> dict[str, Any]:
    """Nothing beyond dataset.json: the summary shows its classes."""
    return {}


def record_picture(dataset_dir: Path, info: dict[str, Any], stage: str, position: int,
                   part: str) -> bytes | None:
    """A record's `image`, `label` (class colours) or `classes` (indices as gray values)."""
    serialized = read_record(dataset_dir, stage, "features" if part == "image" else "labels", position)
    if serialized is None:
        return None
    if part == "image":
        return image_bytes(serialized)
    return label_png(serialized, painting_palette(info) if part == "label" else None)


def dataset_dir(params: dict[str, Any]) -> Path:
    """The dataset folder of an inference job on a validation split."""
    return services().scheduler.folder(params["dataset"]).dataset.path


def truth(folder: JobFolder, params: dict[str, Any], entry: dict[str, Any]) -> np.ndarray | None:
    """The ground truth of a validation image (other sources have none): the job's own copy, or for a
    job made before it kept one, its dataset's record while that dataset lasts."""
    if params["source"] != "dataset":
        return None
    if "truth" in entry:
        return _class_map(folder.path / entry["truth"])
    if services().index.get(params["dataset"]) is None:
        return None
    serialized = read_record(dataset_dir(params), "val", "labels", int(entry["input"]))
    return None if serialized is None else label_indices(serialized)


def _class_map(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)  # a palette PNG: the pixel values are the class indices


def prediction(folder: JobFolder, entry: dict[str, Any]) -> np.ndarray:
    return _class_map(folder.path / entry["prediction"])


def _legend(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every named class and every index a prediction used, with its colour and share of the pixels."""
    pixels: dict[int, int] = {}
    for entry in results["images"]:
        for index, count in entry["classes"].items():
            pixels[int(index)] = pixels.get(int(index), 0) + count
    total = sum(pixels.values()) or 1
    names, palette = results["classes"], extend_palette(results["palette"])
    return [{"index": index, "name": names[index] if index < len(names) else f"class {index}",
             "colour": palette[index].tolist(), "share": pixels.get(index, 0) / total}
            for index in sorted(set(range(len(names))) | set(pixels))]


def inference_context(folder: JobFolder, results: dict[str, Any],
                      shown: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """This page's results with their scores against the truth, and the legend of all results."""
    images, params = [], folder.spec().params
    for number, entry in shown:
        known = truth(folder, params, entry)
        scores = None if known is None else image_scores(known, prediction(folder, entry))
        with Image.open(folder.path / entry["prediction"]) as mask:
            size = mask.size  # the input's: the page keeps each image's ratio before it loads
        images.append({"number": number, "name": entry["input"], "truth": known is not None,
                       "scores": scores, "size": size, "mask": entry["prediction"],
                       "overlay": entry["overlay"]})
    return {"images": images, "legend": _legend(results)}
