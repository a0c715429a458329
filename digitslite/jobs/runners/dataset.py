"""Dataset jobs: build the LMDB dataset into <job>/dataset with the datasets package."""
from pathlib import Path
from typing import Any

from digitslite.datasets import DatasetOptions, create_dataset
from digitslite.jobs.runners.context import RunContext
from digitslite.layout import INPUTS_DIR

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
    return DatasetOptions(**paths, **params["options"])


def run(ctx: RunContext) -> None:
    def progress(done: int, total: int) -> None:
        ctx.check_stop()  # raising here makes create_dataset remove its partial output
        ctx.report(done / total if total else 0.0, f"{done}/{total} images")

    out = ctx.folder.dataset.path
    if ctx.folder.dataset.info_file.is_file():
        # Created by an earlier run that was killed before it could report: creation is atomic.
        print(f"dataset already complete in {out}", flush=True)
        return
    summary = create_dataset(dataset_options(ctx.params, ctx.job_dir), out, progress)
    counts = ", ".join(f"{stage} {count}" for stage, count in summary.info["counts"].items())
    print(f"dataset created in {summary.path}: {counts}", flush=True)
