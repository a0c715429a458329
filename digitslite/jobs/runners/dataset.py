"""Dataset jobs: check the folders, then build the LMDB dataset into <job>/dataset.

The check is the job's first phase, never the request's (pixel work stays out of the server): a
dataset with errors ends the job as failed, its whole report in <job>/check-report.json.
"""
from pathlib import Path
from typing import Any

from digitslite.datasets import DatasetInvalidError, DatasetOptions, create_dataset, remove_partials
from digitslite.fileio import read_json, write_json_atomically
from digitslite.jobs.folder import INPUTS_DIR
from digitslite.jobs.runners.context import RunContext
from digitslite.jobs.runners.names import CHECK_REPORT_FILE, DATASET_DIR, DATASET_INFO_FILE

FOLDER_FIELDS = ("images", "labels", "val_images", "val_labels")
FILE_FIELDS = ("colormap", "classes")


def dataset_options(params: dict[str, Any], job_dir: Path) -> DatasetOptions:
    """The DatasetOptions a dataset job's parameters stand for; upload paths lie in its inputs/."""
    def path(name: str) -> Path | None:
        value = params["paths"][name]
        if value is None:
            return None
        return job_dir / INPUTS_DIR / value if params["source"] == "upload" else Path(value)

    paths = {name: path(name) for name in (*FOLDER_FIELDS, *FILE_FIELDS)}
    if params["source"] == "upload":
        within = ((job_dir / INPUTS_DIR).resolve(),)
    else:
        within = tuple(Path(root) for root in params["within"]) if "within" in params else None
    return DatasetOptions(**paths, **params["options"], within=within)


def dataset_path(job_dir: Path) -> Path:
    return job_dir / DATASET_DIR


def check_report(job_dir: Path) -> dict[str, Any] | None:
    """The validation report of the job's last run, when its check found errors."""
    try:
        return read_json(job_dir / CHECK_REPORT_FILE)
    except FileNotFoundError:
        return None


def run(ctx: RunContext) -> None:
    def progress(done: int, total: int) -> None:
        ctx.check_stop()  # raising here makes create_dataset remove its partial output
        ctx.report(done / total if total else 0.0, f"{done}/{total} images")

    out = dataset_path(ctx.job_dir)
    for stale in remove_partials(out):  # this worker holds the job's lock: no other run writes them
        print(f"removed {stale.name}, left by an earlier run that was killed", flush=True)
    if (out / DATASET_INFO_FILE).is_file():
        # Created by an earlier run that was killed before it could report: creation is atomic.
        print(f"dataset already complete in {out}", flush=True)
        return
    report_file = ctx.job_dir / CHECK_REPORT_FILE
    report_file.unlink(missing_ok=True)  # a resumed job checks the (perhaps fixed) folders again
    try:
        summary = create_dataset(dataset_options(ctx.params, ctx.job_dir), out, progress)
    except DatasetInvalidError as exc:
        write_json_atomically(report_file, exc.report.to_dict())
        raise
    counts = ", ".join(f"{stage} {count}" for stage, count in summary.info["counts"].items())
    print(f"dataset created in {summary.path}: {counts}", flush=True)
