"""A job's timeline from its state's history: each status it went through, when, for how long, and
the time it spent starting or running (its elapsed time, which the pages show)."""
from dataclasses import dataclass

from digitslite.jobs.job import TERMINAL, JobState, Status

WORKING = (Status.STARTING, Status.RUNNING)  # the statuses that count as elapsed time


@dataclass(frozen=True)
class Step:
    status: str
    at: float
    seconds: float | None  # None: the job ended here


@dataclass(frozen=True)
class Timeline:
    steps: list[Step]
    elapsed: float


def job_timeline(state: JobState, now: float) -> Timeline:
    """The steps of `state.history`; an active job's last step lasts until `now`."""
    steps = []
    for index, (status, at) in enumerate(state.history):
        if index + 1 < len(state.history):
            until = state.history[index + 1][1]
        else:
            until = None if status in TERMINAL else now
        steps.append(Step(status, at, None if until is None else max(0.0, until - at)))
    elapsed = sum(step.seconds or 0.0 for step in steps if step.status in WORKING)
    return Timeline(steps, elapsed)
