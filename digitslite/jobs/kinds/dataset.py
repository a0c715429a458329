"""Dataset jobs: LMDBs built from folders for a task; the parameters the planner writes and the runner
reads (which fields a task takes is its record's, digitslite.tasks)."""
from pathlib import Path
from typing import Any

from digitslite.fileio import read_json
from digitslite.jobs.kinds.base import JobKind
from digitslite.layout import JobFiles
from digitslite.tasks import task_of

KIND = JobKind(name="dataset", title="Dataset", tab="datasets", tab_title="Datasets",
               runner="digitslite.jobs.runners.dataset",
               planner="digitslite.server.create_dataset:plan_dataset",
               api="digitslite.server.create_dataset:datasets_api", page="pages.dataset",
               page_module="digitslite.server.pages.datasets",
               request_schema="digitslite.server.schemas.requests:DatasetRequest")

def dataset_options(params: dict[str, Any], job_dir: Path) -> Any:
    """The options (of its task's options class) a dataset job's parameters stand for; upload paths lie
    in its inputs/."""
    def path(name: str) -> Path | None:
        value = params["paths"].get(name)  # jobs from before the list fields have none
        if value is None:
            return None
        return JobFiles(job_dir).input(value) if params["source"] == "upload" else Path(value)

    task = task_of(params)
    fields = task.dataset_fields
    paths = {name: path(name) for name in (*fields.paths, *fields.lists)}
    if params["source"] == "upload":
        within = (JobFiles(job_dir).inputs_dir.resolve(),)
    else:
        within = tuple(Path(root) for root in params["within"]) if "within" in params else None
    return task.part("options")(**paths, **params["options"], within=within)


def check_report(job_dir: Path) -> dict[str, Any] | None:
    """The validation report of the job's last run, when its check found errors."""
    try:
        return read_json(JobFiles(job_dir).check_report)
    except FileNotFoundError:
        return None
