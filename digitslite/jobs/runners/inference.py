"""Inference jobs: run a model's snapshot (or a pretrained job) over images, save coloured results.

Images come from the job's uploaded inputs/, from a server folder, or from a dataset job's
validation split (then the ground truth is there too, and the job reports pixel accuracy and mean
IU). For each image, outputs/ gets the class map as a palette PNG (a valid label file) and an
overlay on the input (and, for a validation split, copies of the input and its ground truth, so
the job's page outlives the dataset); results.json lists them with the classes found, and under
"unreadable" the files that did not decode (each is its own failure: the job runs the others).
"""
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from digitslite.datasets.reader import has_split, split_records
from digitslite.datasets.records import datum_array
from digitslite.errors import UserError
from digitslite.fileio import write_json_atomically
from digitslite.jobs.kinds.inference import image_files
from digitslite.jobs.runners.context import RunContext
from digitslite.jobs.runners.model import snapshot_weights
from digitslite.layout import OUTPUTS_DIR
from digitslite.tasks import task_of
from digitslite.viz.overlay import overlay
from digitslite.viz.palette import extend_palette, voc_palette
from digitslite.viz.png import write_label_png, write_rgb_png

IGNORE_LABEL = 255
UNREADABLE = "cannot be read as an image (not a PNG, JPEG or other format Pillow opens); skipped"

Item = tuple[str, np.ndarray | None, np.ndarray | None]  # name, RGB pixels (None: unreadable), ground truth


def _files(folder: Path, limit: int | None) -> Iterator[Item]:
    """Each image by its name in the folder; one that does not decode comes without pixels."""
    from digitslite.engine.infer import read_image

    for path in image_files(folder)[:limit]:
        try:
            pixels = read_image(path, gray=False)
        except UserError:
            pixels = None
        yield str(path.relative_to(folder)), pixels, None


def _validation_split(dataset_dir: Path, limit: int | None) -> Iterator[Item]:
    """The val_db records: images (stored BGR, returned RGB) with their label maps."""
    if not has_split(dataset_dir, "val"):
        raise UserError(f"the dataset in {dataset_dir} has no validation split; give images or a folder")
    for key, features, labels in split_records(dataset_dir, "val", limit):
        image = datum_array(features)
        pixels = image[0] if image.shape[0] == 1 else image[::-1].transpose(1, 2, 0)
        label = None if labels is None else datum_array(labels)[0]
        yield key.decode(), np.ascontiguousarray(pixels), label


def _model_files(ctx: RunContext) -> tuple[Path, Path, Path | None]:
    """Deploy net, weights and dataset.json (class names, palette) of the model to run."""
    ref = ctx.params["model"]
    model = ctx.other_job(ref["job"], "model")
    if ref["kind"] == "pretrained":
        weights = model.pretrained_weights
    else:
        weights = snapshot_weights(model, ref.get("iteration"), "model")
    info = model.dataset_info_file
    return model.deploy_file, weights, info if info.is_file() else None


def items(ctx: RunContext) -> Iterator[Item]:
    source, limit = ctx.params["source"], ctx.params.get("limit")
    if source == "upload":
        return _files(ctx.folder.inputs_dir, limit)
    if source == "folder":
        return _files(Path(ctx.params["folder"]), limit)
    return _validation_split(ctx.other_job(ctx.params["dataset"], "dataset").dataset.path, limit)


class _Scores:
    """Confusion matrix over the images that have ground truth."""

    def __init__(self) -> None:
        self.matrix: np.ndarray | None = None

    def add(self, truth: np.ndarray, prediction: np.ndarray, classes: int) -> None:
        size = max(classes, int(truth[truth != IGNORE_LABEL].max(initial=0)) + 1)
        if self.matrix is None or self.matrix.shape[0] < size:
            grown = np.zeros((size, size), np.int64)
            if self.matrix is not None:
                grown[:self.matrix.shape[0], :self.matrix.shape[0]] = self.matrix
            self.matrix = grown
        keep = truth != IGNORE_LABEL
        pairs = truth[keep].astype(np.int64) * self.matrix.shape[0] + prediction[keep]
        self.matrix += np.bincount(pairs, minlength=self.matrix.size).reshape(self.matrix.shape)

    def summary(self) -> dict[str, Any] | None:
        if self.matrix is None or not self.matrix.sum():
            return None
        matrix = self.matrix.astype(np.float64)
        hits = np.diag(matrix)
        union = matrix.sum(0) + matrix.sum(1) - hits
        present = matrix.sum(1) > 0
        iu = np.divide(hits, union, out=np.zeros_like(hits), where=union > 0)
        return {"pixel_accuracy": float(hits.sum() / matrix.sum()),
                "mean_iu": float(iu[present].mean()), "per_class_iu": [float(value) for value in iu]}


def unreadable(name: str) -> dict[str, str]:
    """An image that did not decode: its own failure, reported; the others still run."""
    print(f"warning: {name}: {UNREADABLE}", flush=True)
    return {"input": name, "error": UNREADABLE}


def nothing_ran(unread: list) -> str:
    unreadable = f" ({len(unread)} could not be read as images)" if unread else ""
    return f"there were no images to run the model on{unreadable}"


def report_progress(ctx: RunContext, done: int) -> None:
    total = ctx.params.get("count") or 0
    ctx.report(done / total if total else 0.0, f"{done} images")


def run(ctx: RunContext) -> None:
    from digitslite.engine.host_memory import retain_freed_memory
    from digitslite.engine.infer import load_predictor

    deploy, weights, info_file = _model_files(ctx)
    info = json.loads(info_file.read_text()) if info_file is not None else {}
    device = "cuda" if ctx.spec.gpu_count else "cpu"
    if device == "cpu":     # the job's own process: image after image reuses the last one's pages
        retain_freed_memory()
    predictor = load_predictor(deploy, weights, device=device, warn=lambda text: print(f"warning: {text}"))
    ctx.folder.outputs_dir.mkdir(exist_ok=True)
    task_of(info).part("inference")(ctx, predictor, info)  # the task of the model's dataset


def segment(ctx: RunContext, predictor, info: dict[str, Any]) -> None:
    """Segmentation's inference: a class map and an overlay per image, scored against the truth."""
    names, palette = [], voc_palette()
    if info:
        names, palette = info["classes"], extend_palette(info["palette"])
    outputs = ctx.folder.outputs_dir
    results, unread, scores = [], [], _Scores()
    for number, (name, pixels, truth) in enumerate(items(ctx)):
        ctx.check_stop()
        if pixels is None:  # that image's own failure: the others still run
            unread.append(unreadable(name))
            continue
        scores_map = next(iter(predictor.predict(pixels).values()))
        prediction = scores_map.argmax(0).astype(np.uint8)
        stem = f"{number:05d}"
        write_label_png(outputs / f"{stem}.png", prediction, palette)
        write_rgb_png(outputs / f"{stem}_overlay.png", overlay(pixels, prediction, palette))
        found, pixels_per_class = np.unique(prediction, return_counts=True)
        entry = {"input": name, "prediction": f"{OUTPUTS_DIR}/{stem}.png",
                 "overlay": f"{OUTPUTS_DIR}/{stem}_overlay.png",
                 "classes": {str(index): int(count) for index, count in
                             zip(found.tolist(), pixels_per_class.tolist(), strict=True)}}
        if ctx.params["source"] == "dataset":  # the job keeps what it shows: the dataset may be deleted
            entry["input_copy"] = f"{OUTPUTS_DIR}/{stem}_input.png"
            write_rgb_png(ctx.job_dir / entry["input_copy"], pixels)
        if truth is not None:
            entry["truth"] = f"{OUTPUTS_DIR}/{stem}_truth.png"
            write_label_png(ctx.job_dir / entry["truth"], truth, palette)
            scores.add(truth, prediction, len(names) or scores_map.shape[0])
        results.append(entry)
        report_progress(ctx, number + 1)
    if not results:
        raise UserError(nothing_ran(unread))
    used_palette = palette[:max(len(names), 1)].tolist()
    write_json_atomically(ctx.folder.results_file, {"classes": names, "palette": used_palette,
                                                   "images": results, "unreadable": unread,
                                                   "scores": scores.summary()})
    print(f"inference done on {len(results)} images", flush=True)
