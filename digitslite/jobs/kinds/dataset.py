"""Dataset jobs: LMDBs built from image and label folders; the parameters the planner writes and the
runner reads."""
from pathlib import Path
from typing import Any

from digitslite.datasets import DatasetOptions
from digitslite.fileio import read_json
from digitslite.jobs.kinds.base import JobKind
from digitslite.layout import JobFiles

KIND = JobKind(name="dataset", title="Dataset", tab="datasets", tab_title="Datasets",
               runner="digitslite.jobs.runners.dataset",
               planner="digitslite.server.create_dataset:plan_dataset",
               api="digitslite.server.create_dataset:datasets_api", page="pages.dataset",
               page_module="digitslite.server.pages.datasets",
               request_schema="digitslite.server.schemas.requests:DatasetRequest")

FOLDER_FIELDS = ("images", "labels", "val_images", "val_labels")
FILE_FIELDS = ("colormap", "classes")
LIST_FIELDS = ("train_list", "val_list")  # server files only: their lines name server paths


def dataset_options(params: dict[str, Any], job_dir: Path) -> DatasetOptions:
    """The DatasetOptions a dataset job's parameters stand for; upload paths lie in its inputs/."""
    def path(name: str) -> Path | None:
        value = params["paths"].get(name)  # jobs from before the list fields have none
        if value is None:
            return None
        return JobFiles(job_dir).input(value) if params["source"] == "upload" else Path(value)

    paths = {name: path(name) for name in (*FOLDER_FIELDS, *FILE_FIELDS, *LIST_FIELDS)}
    if params["source"] == "upload":
        within = (JobFiles(job_dir).inputs_dir.resolve(),)
    else:
        within = tuple(Path(root) for root in params["within"]) if "within" in params else None
    return DatasetOptions(**paths, **params["options"], within=within)


def check_report(job_dir: Path) -> dict[str, Any] | None:
    """The validation report of the job's last run, when its check found errors."""
    try:
        return read_json(JobFiles(job_dir).check_report)
    except FileNotFoundError:
        return None
