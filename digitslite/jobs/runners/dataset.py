"""Dataset jobs: build the LMDB dataset into <job>/dataset with the datasets package (segmentation,
or colorization when the job's params name that task)."""
from pathlib import Path
from typing import Any

from digitslite.datasets import DatasetOptions, create_dataset, remove_partials
from digitslite.datasets.colorize.create import create_colorize
from digitslite.datasets.colorize.options import ColorizeOptions
from digitslite.datasets.tasks import COLORIZATION, SEGMENTATION
from digitslite.jobs.folder import INPUTS_DIR
from digitslite.jobs.runners.context import RunContext
from digitslite.jobs.runners.names import DATASET_DIR, DATASET_INFO_FILE

FOLDER_FIELDS = ("images", "labels", "val_images", "val_labels")
FILE_FIELDS = ("colormap", "classes")
COLORIZE_FOLDER_FIELDS = ("images", "val_images")


def dataset_task(params: dict[str, Any]) -> str:
    """The task a dataset job builds for (jobs from before colorization have no `task`)."""
    return params.get("task", SEGMENTATION)


def dataset_options(params: dict[str, Any], job_dir: Path) -> DatasetOptions | ColorizeOptions:
    """The options a dataset job's parameters stand for; upload paths lie in its inputs/."""
    def path(name: str) -> Path | None:
        value = params["paths"][name]
        if value is None:
            return None
        return job_dir / INPUTS_DIR / value if params["source"] == "upload" else Path(value)

    paths = {name: path(name) for name in params["paths"]}
    if params["source"] == "upload":
        within = ((job_dir / INPUTS_DIR).resolve(),)
    else:
        within = tuple(Path(root) for root in params["within"]) if "within" in params else None
    options = ColorizeOptions if dataset_task(params) == COLORIZATION else DatasetOptions
    return options(**paths, **params["options"], within=within)


def dataset_path(job_dir: Path) -> Path:
    return job_dir / DATASET_DIR


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
    options = dataset_options(ctx.params, ctx.job_dir)
    create = create_colorize if isinstance(options, ColorizeOptions) else create_dataset
    summary = create(options, out, progress)
    counts = ", ".join(f"{stage} {count}" for stage, count in summary.info["counts"].items())
    print(f"dataset created in {summary.path}: {counts}", flush=True)
