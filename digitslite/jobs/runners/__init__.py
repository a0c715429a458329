"""One runner per job kind (named by its record in jobs.kinds), imported only by the worker.

A runner is a module with `run(ctx: RunContext) -> None`: it returns when the job is done, raises
UserError when the job cannot be done as asked, and raises JobStopped when it stopped on request.
"""
from collections.abc import Callable

from digitslite.jobs.kinds import job_kind, load
from digitslite.jobs.runners.context import RunContext


def load_runner(kind: str) -> Callable[[RunContext], None]:
    return load(job_kind(kind).runner).run
