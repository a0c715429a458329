"""One runner per job kind, imported only by the worker that runs such a job.

A runner is a module with `run(ctx: RunContext) -> None`: it returns when the job is done, raises
UserError when the job cannot be done as asked, and raises JobStopped when it stopped on request.
"""
import importlib
from collections.abc import Callable

from digitslite.jobs.runners.context import RunContext

_MODULES = {kind: f"{__name__}.{kind}" for kind in ("dataset", "model", "inference", "pretrained")}


def load_runner(kind: str) -> Callable[[RunContext], None]:
    if kind not in _MODULES:
        raise ValueError(f"no runner for job kind {kind!r}")
    return importlib.import_module(_MODULES[kind]).run
