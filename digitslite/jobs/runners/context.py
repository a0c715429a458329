"""What a runner gets from the worker: the job, its folder, and the ways to report and to stop."""
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitslite.errors import UserError
from digitslite.jobs.folder import JobFolder
from digitslite.jobs.job import JobSpec


class JobStopped(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a runner that stopped early because an abort was asked for."""


@dataclass
class RunContext:
    folder: JobFolder
    spec: JobSpec
    report: Callable[[float, str], None]  # (fraction done in 0..1, short message)
    should_stop: Callable[[], bool]

    @property
    def params(self) -> dict[str, Any]:
        return self.spec.params

    @property
    def job_dir(self) -> Path:
        return self.folder.path

    def other_job(self, job_id: str, what: str) -> JobFolder:
        """The folder of another job this one uses (`what` names it in the error)."""
        folder = JobFolder(self.folder.path.parent / job_id)
        if not folder.spec_file.is_file():
            raise UserError(f"the {what} job {job_id} no longer exists; create it again and resume this job")
        return folder

    def check_stop(self) -> None:
        if self.should_stop():
            raise JobStopped()
