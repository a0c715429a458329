"""A training job as one figure for a paper: the loss and validation curves, the last validation's
confusion matrix (each true class's row as fractions) and its per-class IU.

Read from the job folder alone (metrics.jsonl, and dataset.json for the class names when the job
keeps a copy), so it works on a server's model job and on a `digitslite train -o` folder alike.
Drawn with matplotlib's object API (no pyplot, no display): the file's suffix picks PDF, PNG or SVG.
"""
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitslite.errors import UserError
from digitslite.layout import JobFiles

if TYPE_CHECKING:  # matplotlib loads only for a report
    from matplotlib.figure import Figure

FORMATS = (".pdf", ".png", ".svg")
QUALITY = ("mean_iu", "pixel_accuracy")  # validation scores drawn beside the loss, when recorded


@dataclass(frozen=True)
class JobMetrics:
    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    classes: list[str]

    @property
    def last_val(self) -> dict[str, Any] | None:
        return self.val[-1] if self.val else None


def read_job_metrics(job_dir: Path) -> JobMetrics:
    """The job's metric records by phase (a line still being written is left out) and class names."""
    path = JobFiles(job_dir).metrics_file
    if not path.is_file():
        raise UserError(f"{job_dir}: no {path.name}; give the folder of a model job or of "
                        "`digitslite train -o`, once it has trained a few iterations")
    records = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.endswith("\n"):
                break
            try:
                records.append(json.loads(line))
            except ValueError:
                raise UserError(f"{path}:{number}: not a JSON record; the file is damaged") from None
    val = [record for record in records if record.get("phase") == "val" and record.get("test_net", 0) == 0]
    train = [record for record in records if record.get("phase") == "train"]
    classes: list[str] = []
    info = JobFiles(job_dir).dataset_info_file
    if info.is_file():
        classes = list(json.loads(info.read_text(encoding="utf-8")).get("classes", []))
    return JobMetrics(train, val, classes)


def row_fractions(matrix: np.ndarray) -> np.ndarray:
    """Each true class's row divided by its pixel count; a class with no pixels stays a row of zeros."""
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)


def _curve(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    points = [(record["iteration"], record[key]) for record in records
              if isinstance(record.get(key), int | float) and math.isfinite(record[key])]
    return [x for x, _ in points], [y for _, y in points]


def _names(metrics: JobMetrics, count: int) -> list[str]:
    return [metrics.classes[i] if i < len(metrics.classes) else f"class {i}" for i in range(count)]


def draw_report(metrics: JobMetrics, title: str) -> "Figure":
    """The figure (matplotlib.figure.Figure): curves, and with a segmentation validation the
    confusion matrix and per-class IU."""
    from matplotlib.figure import Figure  # here: matplotlib loads only for a report

    last = metrics.last_val
    scored = last is not None and "confusion_matrix" in last
    figure = Figure(figsize=(15, 4.5) if scored else (6, 4.5), layout="constrained")
    panels = figure.subplots(1, 3 if scored else 1, squeeze=False)[0]
    figure.suptitle(title)
    curves = panels[0]
    for records, label in ((metrics.train, "train loss"), (metrics.val, "validation loss")):
        x, y = _curve(records, "loss")
        if x:
            curves.plot(x, y, label=label)
    curves.set(xlabel="iteration", ylabel="loss", title="Training")
    quality = curves.twinx()
    for key, style in zip(QUALITY, ("-o", "--s"), strict=True):
        x, y = _curve(metrics.val, key)
        if x:
            quality.plot(x, y, style, markersize=3, color="tab:green", label=f"validation {key}")
    quality.set(ylabel="score", ylim=(0, 1))
    handles = curves.get_legend_handles_labels()[0] + quality.get_legend_handles_labels()[0]
    if handles:
        curves.legend(handles=handles, loc="center right", fontsize="small")
    if scored:
        matrix = row_fractions(np.asarray(last["confusion_matrix"], dtype=float))
        names = _names(metrics, matrix.shape[0])
        confusion = panels[1]
        image = confusion.imshow(matrix, vmin=0, vmax=1, cmap="Blues")
        confusion.set(xticks=range(len(names)), yticks=range(len(names)), xlabel="predicted", ylabel="true",
                      title=f"Confusion at iteration {last['iteration']}")
        confusion.set_xticklabels(names, rotation=90, fontsize="small")
        confusion.set_yticklabels(names, fontsize="small")
        figure.colorbar(image, ax=confusion, label="fraction of the true class's pixels")
        iu = panels[2]
        values = [value if value is not None else 0.0 for value in last.get("per_class_iu", [])]
        iu.barh(range(len(values)), values, color="tab:blue")
        iu.set(xlim=(0, 1), yticks=range(len(values)), xlabel="IU",
               title=f"Per-class IU (mean {last['mean_iu']:.3f})")
        iu.set_yticklabels(_names(metrics, len(values)), fontsize="small")
        iu.invert_yaxis()
    return figure


def write_report(job_dir: Path, output: Path) -> dict[str, Any]:
    """Draw the job's report into `output` (whole or not at all); return what it shows in numbers."""
    if output.suffix.lower() not in FORMATS:
        raise UserError(f"{output}: the report is written as {', '.join(FORMATS)}; give -o a name ending so")
    metrics = read_job_metrics(job_dir)
    if not metrics.train and not metrics.val:
        raise UserError(f"{JobFiles(job_dir).metrics_file}: no train or val records yet; report once the "
                        "job has logged some iterations")
    figure = draw_report(metrics, job_dir.resolve().name)
    partial = output.with_name(f".{output.name}.partial")
    try:
        figure.savefig(partial, format=output.suffix.lower().lstrip("."), dpi=150)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    last = metrics.last_val
    return {"report": str(output), "train_records": len(metrics.train), "val_records": len(metrics.val),
            "last_val": None if last is None else {key: last.get(key) for key in
                                                   ("iteration", "loss", "pixel_accuracy", "mean_iu",
                                                    "per_class_iu")}}
