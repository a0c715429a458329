"""`python -m digitslite.worker JOBDIR`: run one job, started by the server's scheduler.

The worker holds the job's lock for its whole life (the server's proof that it is alive) and is
then the only writer of state.json. It reports progress there, stops cleanly on SIGTERM (a model
snapshots first), and writes its final status itself; if it dies without doing so, the server sees
the lock drop and marks the job interrupted.
"""
import dataclasses
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from digitslite.diskfull import disk_full_message, is_disk_full
from digitslite.engine.launch import RanksInterrupted
from digitslite.errors import UserError
from digitslite.jobs.folder import JobFolder
from digitslite.jobs.lock import JobLock
from digitslite.jobs.model import JobState, Status
from digitslite.jobs.procs import boot_id, proc_start_time
from digitslite.jobs.runners import load_runner
from digitslite.jobs.runners.context import JobStopped, RunContext
from digitslite.jobs.workers import TOKEN_ENV

PROGRESS_INTERVAL_S = 0.5


class StateReporter:
    """Writes this worker's view of the job into state.json; progress ticks at most twice a second."""

    def __init__(self, folder: JobFolder, state: JobState):
        self.folder = folder
        self.state = state
        self._last_progress = 0.0

    def _write(self, state: JobState, *, durable: bool = True) -> None:
        self.state = state
        self.folder.write_state(state, durable=durable)

    def started(self) -> None:
        pid = os.getpid()
        self._write(self.state.moved_to(Status.RUNNING, pid=pid, proc_start=proc_start_time(pid),
                                        boot_id=boot_id(), started_at=time.time(), message="started"))

    def progress(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        fraction = min(max(float(fraction), 0.0), 1.0)
        # Not fsynced: a lost progress tick costs nothing, and the rename keeps the file whole.
        self._write(dataclasses.replace(self.state, progress=fraction, message=message), durable=False)

    def finished(self, status: Status, error: str | None = None, field: str | None = None) -> None:
        changes: dict = {"error": {"message": error, "field": field}} if error else {}
        if status == Status.DONE:
            changes.update(progress=1.0, message="done")
        self._write(self.state.moved_to(status, **changes))


class StopFlag:
    """Set by SIGTERM (abort, or the machine shutting down), or by the server's abort marker."""

    def __init__(self, folder: JobFolder):
        self.folder = folder
        self.signalled = False
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signalled = True

    def __call__(self) -> bool:
        return self.signalled or self.folder.abort_requested()


def run_job(folder: JobFolder, token: str | None) -> int:
    """Run the job if this worker is the one the server launched; return the process exit code."""
    lock = JobLock(folder.lock_file)
    lock.acquire(blocking=True)  # held until this process ends; the kernel drops it even on SIGKILL
    state = folder.state()
    if token is None or state.status != Status.STARTING or state.token != token:
        print(f"worker: job {folder.id} was not launched for this worker (status {state.status}); "
              "nothing to do", flush=True)
        return 2
    reporter = StateReporter(folder, state)
    reporter.started()
    should_stop = StopFlag(folder)
    spec = folder.spec()
    print(f"worker: running {spec.kind} job {spec.id} (pid {os.getpid()}, run {state.runs})", flush=True)
    try:
        if should_stop():
            raise JobStopped()
        load_runner(spec.kind)(RunContext(folder, spec, reporter.progress, should_stop))
    except JobStopped:
        print("worker: stopped on request", flush=True)
        reporter.finished(Status.ABORTED)
    except RanksInterrupted as exc:
        print(f"worker: {exc}", flush=True)
        reporter.finished(Status.INTERRUPTED, str(exc))
    except UserError as exc:
        print(f"worker: error: {exc}", flush=True)
        reporter.finished(Status.FAILED, str(exc), getattr(exc, "field", None))
    except Exception as exc:
        traceback.print_exc()
        sys.stdout.flush()
        if is_disk_full(exc, folder.path):
            reporter.finished(Status.FAILED, disk_full_message(folder.path))
        else:
            reporter.finished(Status.FAILED, f"internal error {type(exc).__name__}: {exc}; the traceback is "
                                             "in the job log")
    else:
        print("worker: done", flush=True)
        reporter.finished(Status.DONE)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m digitslite.worker JOBDIR (started by `digitslite serve`)", file=sys.stderr)
        return 2
    folder = JobFolder(Path(argv[0]).resolve())
    if not folder.state_file.is_file():
        print(f"worker: {folder.path} is not a job folder (no state.json)", file=sys.stderr)
        return 2
    return run_job(folder, os.environ.get(TOKEN_ENV))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
