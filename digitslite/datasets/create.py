"""Entry points for the command line and the job server: check a dataset, or create it atomically.

Creation writes everything into a hidden sibling folder and renames it to the output folder only
when it is complete, so a refused, failed or aborted creation (exception, Ctrl-C, SIGTERM from the
job server) leaves no dataset behind.
"""
import datetime
import json
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TypeVar

from digitslite.datasets.mean import mean_blob
from digitslite.datasets.options import DatasetOptions
from digitslite.datasets.records import record_key
from digitslite.datasets.report import STAGES, ValidationReport
from digitslite.datasets.scan import Plan, Progress, ScanOutcome, make_plan, scan
from digitslite.errors import UserError
from digitslite.layout import MEAN_FILE, DatasetFiles, db_name
from digitslite.tasks.segmentation import TASK

PlanT = TypeVar("PlanT")
OutcomeT = TypeVar("OutcomeT")


class DatasetInvalidError(UserError):
    """The folders have errors; `report` lists all of them."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(f"dataset not created: {report.summary_line()}")
        self.report = report


class DatasetAbortedError(UserError):
    """Creation was stopped by a signal; nothing was written."""


@dataclass
class DatasetSummary:
    """A created dataset: where it is, what dataset.json says, and the report (with its warnings)."""

    path: Path
    info: dict
    report: ValidationReport

    def to_dict(self) -> dict:
        return {"path": str(self.path), **self.info}


def check_dataset(options: DatasetOptions, progress: Progress | None = None) -> ValidationReport:
    """The dry run: every check and the class statistics, nothing written."""
    return scan(make_plan(options), None, progress).report


def _partial_name(out: Path) -> str:
    return f".{out.name}.partial-"


def remove_partials(out_dir: Path | str) -> list[Path]:
    """Remove the hidden partial folders that killed creations of `out_dir` left behind; return them.
    Only for a caller that knows no other creation of `out_dir` runs (a job worker holds its lock)."""
    out = Path(out_dir).expanduser().absolute()
    if not out.parent.is_dir():
        return []
    stale = [path for path in out.parent.iterdir() if path.name.startswith(_partial_name(out))]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def unused_output(out_dir: Path | str) -> Path:
    """`out_dir` as an absolute path, refused if something is there already (an empty folder is not)."""
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: the output folder already exists; choose a new folder or delete it")
    return out


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM (the job server's abort) into an exception so the partial folder is removed."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def abort(signum: int, frame: FrameType | None) -> None:
        raise DatasetAbortedError("dataset creation was aborted (SIGTERM); nothing was written")

    signal.signal(signal.SIGTERM, abort)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def publishing(out_dir: Path | str) -> Iterator[Path]:
    """A hidden partial folder beside `out_dir` to write into, renamed to `out_dir` when the block
    ends normally and removed when it raises (SIGTERM included)."""
    out = unused_output(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / f"{_partial_name(out)}{secrets.token_hex(4)}"
    partial.mkdir()
    try:
        with _sigterm_raises():
            yield partial
        unused_output(out)  # another creation may have published it meanwhile
        os.rename(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def create_dataset(options: DatasetOptions, out_dir: Path | str,
                   progress: Progress | None = None) -> DatasetSummary:
    """Validate and write the dataset to `out_dir`; raise DatasetInvalidError (with the report) on errors.

    `progress(done, total)` is called from this process as pairs complete.
    """
    return publish_checked(out_dir, lambda: make_plan(options), scan, _write_extras, progress)


def publish_checked(out_dir: Path | str, plan_for: Callable[[], PlanT],
                    scan_into: Callable[[PlanT, Path, Progress | None], OutcomeT],
                    write_extras: Callable[[Path, PlanT, OutcomeT], dict],
                    progress: Progress | None = None) -> DatasetSummary:
    """Refuse an output folder in use, then make the plan (listing the images can take long), scan it
    into a partial folder, refuse with the report if it found errors, else add the extras (which
    return dataset.json's content) and publish: one way for every task to write."""
    unused_output(out_dir)
    plan = plan_for()
    with publishing(out_dir) as partial:
        outcome = scan_into(plan, partial, progress)
        if not outcome.report.ok:
            raise DatasetInvalidError(outcome.report)
        info = write_extras(partial, plan, outcome)
    return DatasetSummary(Path(out_dir).expanduser().absolute(), info, outcome.report)


def _write_extras(folder: Path, plan: Plan, outcome: ScanOutcome) -> dict:
    """mean.binaryproto, the per-split source lists and dataset.json; returns dataset.json's content."""
    if outcome.mean_bgr is not None:
        DatasetFiles(folder).mean_file.write_bytes(mean_blob(outcome.mean_bgr))
    for stage in STAGES:
        if plan.stages[stage]:
            lines = [f"{record_key(position).decode()}\t{pair.image}\t{pair.label}\n"
                     for position, pair in enumerate(plan.stages[stage])]
            (folder / f"{stage}.txt").write_text("".join(lines), encoding="utf-8")
    info = _dataset_info(plan, outcome)
    DatasetFiles(folder).info_file.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _dataset_info(plan: Plan, outcome: ScanOutcome) -> dict:
    options, report, resolved = plan.options, outcome.report, plan.resolved
    stages = [stage for stage in STAGES if plan.stages[stage]]
    recorded = options.to_dict() | {"seed": plan.seed, "val_percent": resolved.val_percent}
    return {
        "format": TASK.dataset_format,
        "task": TASK.name,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "classes": outcome.names,
        "palette": [list(colour) for colour in outcome.colours],
        "ignore_label": options.ignore_label,
        "ignore_colour": list(outcome.ignore_colour),
        "label_mode": options.label_mode,
        "palette_source": None if plan.palette_source is None else str(plan.palette_source),
        "counts": report.counts,
        "class_pixels": {stage: [stat.pixels[stage] for stat in report.classes] for stage in STAGES},
        "class_frequency": {stage: [stat.frequency[stage] for stat in report.classes] for stage in STAGES},
        "ignored_pixels": report.ignored_pixels,
        "image_size": report.image_size,
        "source_image_size": report.source_image_size,
        "channels": 3,
        "encoding": options.encoding,
        "resize": None if options.resize == "none" else
        {"mode": options.resize, "width": options.width, "height": options.height},
        "mean_file": MEAN_FILE if outcome.mean_bgr is not None else None,
        "databases": {stage: {part: db_name(stage, part) for part in TASK.databases}
                      for stage in stages},
        "sources": {name: None if path is None else str(path) for name, path in (
                        ("images", resolved.images), ("labels", resolved.labels),
                        ("val_images", resolved.val_images), ("val_labels", resolved.val_labels),
                        ("train_list", resolved.train_list), ("val_list", resolved.val_list))}
                   | {"colormap": recorded["colormap"], "classes": recorded["classes"]},
        "seed": plan.seed,
        "options": recorded,
        "warnings": [problem.to_dict() for problem in report.warnings],
    }
