"""Pretrained jobs: weights with their deploy network under fixed names; the files a request names."""
from pathlib import Path
from typing import Any

from digitslite.jobs.kinds.base import JobKind
from digitslite.layout import JobFiles

KIND = JobKind(name="pretrained", title="Pretrained model", tab="pretrained", tab_title="Pretrained models",
               runner="digitslite.jobs.runners.pretrained",
               planner="digitslite.server.create_pretrained:plan_pretrained",
               api="digitslite.server.create_pretrained:pretrained_api", page="pages.pretrained",
               page_module="digitslite.server.pages.models",
               request_schema="digitslite.server.schemas.requests:PretrainedRequest")

FILE_ROLES = ("deploy", "weights", "network", "dataset_info", "classes", "colormap")


def input_path(params: dict[str, Any], role: str, job_dir: Path) -> Path | None:
    """Where the file of `role` is: in the job's inputs/ for uploads, else the server path."""
    value = params["files"].get(role)
    if value is None:
        return None
    return JobFiles(job_dir).input(value) if params["source"] == "upload" else Path(value)
