"""The scheduler: a thread in the server process that starts, watches and stops worker processes.

Every change to a job's lifecycle, from the scheduler thread or from a request, happens under one
lock, so that for example a delete cannot race a launch. The server writes a job's state.json only
while it holds that job's worker lock (see lock.py), so it never overwrites what a live worker wrote.
"""
import logging
import os
import secrets
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from digitslite.diskfull import disk_full_message, is_disk_full
from digitslite.jobs.errors import JobConflictError, JobNotFoundError
from digitslite.jobs.folder import JobFolder, clear_leftovers, create_job_folder, remove_job_folder
from digitslite.jobs.index import JobIndex
from digitslite.jobs.lock import JobLock
from digitslite.jobs.model import RESUMABLE, TERMINAL, JobSpec, JobState, Status
from digitslite.jobs.resources import Request, plan, unsatisfiable
from digitslite.jobs.workers import WorkerHandle, spawn_worker

log = logging.getLogger(__name__)

Prepare = Callable[[Path], None]
EXIT_GRACE_S = 10.0  # how long a worker that reported its end may take to exit
MAX_BACKOFF_S = 30.0


@dataclass
class SchedulerSettings:
    gpus: list[str] = field(default_factory=list)
    cpu_slots: int = 2
    abort_grace_s: float = 10.0  # SIGTERM first; SIGKILL when the worker has not stopped by then
    poll_interval_s: float = 0.25


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "it is no longer running"
    if code < 0:
        return f"it was killed by {signal.Signals(-code).name}"
    return f"it exited with code {code}"


def _dependency_failure(waits_for: list[str], statuses: dict[str, Status]) -> str | None:
    """Why a job waiting for `waits_for` can never start, or None."""
    for needed in waits_for:
        status = statuses.get(needed)
        if status is None:
            return f"job {needed}, which this job needs, was deleted"
        if status in TERMINAL and status != Status.DONE:
            return (f"job {needed}, which this job needs, is {status}; resume or recreate it, then "
                    "resume this job")
    return None


class Scheduler:
    def __init__(self, jobs_dir: Path, index: JobIndex, settings: SchedulerSettings):
        self.jobs_dir = jobs_dir
        self.index = index
        self.settings = settings
        self._lock = threading.RLock()
        self._workers: dict[str, WorkerHandle] = {}
        self._specs: dict[str, JobSpec] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- running -------------------------------------------------------------------------------

    def start(self) -> None:
        """Recover from whatever the last server left, then schedule in a background thread."""
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop scheduling. Workers keep running: a later server re-attaches to them."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        failures, last_error = 0, ""
        while not self._stopping.is_set():
            try:
                self.tick()
                failures, last_error = 0, ""
            except Exception as exc:  # one bad job folder must not stop the scheduling of all others
                failures += 1
                if is_disk_full(exc, self.jobs_dir):
                    error = "disk full"
                    if error != last_error:
                        log.error("scheduling paused: %s", disk_full_message(self.jobs_dir))
                else:
                    error = f"{type(exc).__name__}: {exc}"
                    if error != last_error:
                        log.exception("scheduler tick failed")
                last_error = error  # the same failure again is not logged again
            # Failing ticks back off (up to MAX_BACKOFF_S) instead of retrying four times a second.
            pause = min(MAX_BACKOFF_S, self.settings.poll_interval_s * 2 ** failures)
            self._wake.wait(pause if failures else self.settings.poll_interval_s)
            self._wake.clear()

    def recover(self) -> None:
        """Rebuild the picture after a restart: index what changed, re-attach to live workers."""
        with self._lock:
            clear_leftovers(self.jobs_dir)
            for name in self.index.reconcile(self.jobs_dir):
                log.warning("job folder %s is unreadable and was left out of the index", name)
            for job_id in self.index.ids_with_status(Status.STARTING, Status.RUNNING):
                folder = self.folder(job_id)
                state = folder.state()
                handle = WorkerHandle(folder, state.gpus, state.launched_at or 0.0)
                if folder.abort_requested():
                    handle.abort_deadline = time.time() + self.settings.abort_grace_s
                self._workers[job_id] = handle

    def tick(self) -> None:
        with self._lock:
            self._watch_workers()
            self._start_queued()

    # --- queries -------------------------------------------------------------------------------

    def folder(self, job_id: str) -> JobFolder:
        return JobFolder(self.jobs_dir / job_id)

    def existing_folder(self, job_id: str, field: str | None = None) -> JobFolder:
        if self.index.get(job_id) is None:
            raise JobNotFoundError(job_id, field)
        return self.folder(job_id)

    def spec(self, job_id: str) -> JobSpec:
        spec = self._specs.get(job_id)
        if spec is None:
            spec = self._specs[job_id] = self.folder(job_id).spec()
        return spec

    @property
    def cpu_threads(self) -> int:
        """Threads for a job on a CPU slot: the cores shared out between the slots."""
        return max(1, (os.cpu_count() or 1) // self.settings.cpu_slots)

    def sync_index(self, job_id: str) -> None:
        """Re-read one job into the index now (a reader saw the folder ahead of it), under the lock
        so that it cannot overwrite a newer row written by the scheduler thread."""
        with self._lock:
            if self.index.get(job_id) is not None:
                try:
                    self.index.refresh(self.folder(job_id))
                except (sqlite3.Error, OSError) as exc:  # a full disk: the reader has the folder's view
                    log.warning("index not refreshed for job %s: %s", job_id, exc)

    def running_gpus(self) -> dict[str, list[str]]:
        with self._lock:
            return {job_id: handle.gpus for job_id, handle in self._workers.items() if handle.gpus}

    # --- operations ----------------------------------------------------------------------------

    def submit(self, jobs: list[tuple[JobSpec, Prepare | None]]) -> list[JobFolder]:
        """Create the jobs' folders and queue them; every job they depend on must exist."""
        with self._lock:
            for spec, _ in jobs:
                for needed in spec.depends_on:
                    self.existing_folder(needed, field="depends_on")
            folders = []
            for spec, prepare in jobs:
                state = JobState().moved_to(Status.QUEUED)
                folder = create_job_folder(self.jobs_dir, spec, state, prepare)
                try:
                    self.index.refresh(folder)
                except BaseException:
                    remove_job_folder(folder)  # a job the index cannot hold would never run
                    raise
                folders.append(folder)
        self.wake()
        return folders

    def abort(self, job_id: str) -> None:
        """Queued: aborted at once. Running: SIGTERM (the worker snapshots), SIGKILL after the grace."""
        with self._lock:
            folder = self.existing_folder(job_id)
            status = folder.state().status
            if status in TERMINAL:
                raise JobConflictError(f"job {job_id} is {status}; only queued or running jobs can be "
                                       "aborted")
            handle = self._current_worker(job_id)
            if handle is None:
                # Under the lock a queued job has no worker: nothing can start it meanwhile.
                self._server_write(folder, lambda s: s.moved_to(Status.ABORTED))
            elif handle.abort_deadline is None:
                folder.request_abort()
                handle.stop()
                handle.abort_deadline = time.time() + self.settings.abort_grace_s
        self.wake()

    def resume(self, job_id: str) -> None:
        """Queue an aborted, failed or interrupted job again; a model continues from its latest snapshot."""
        with self._lock:
            folder = self.existing_folder(job_id)
            status = folder.state().status
            if status not in RESUMABLE:
                raise JobConflictError(f"job {job_id} is {status}; only aborted, failed or interrupted jobs "
                                       "can be resumed")
            if self._current_worker(job_id) is not None:
                raise JobConflictError(f"the worker of job {job_id} is still stopping; try again in a moment")
            if self._server_write(folder, lambda s: s.moved_to(Status.QUEUED, error=None)) is None:
                raise JobConflictError(f"a worker still holds job {job_id}; try again in a moment")
            folder.clear_abort()
        self.wake()

    def delete(self, job_id: str, *, force: bool = False) -> None:
        """Remove the job and its folder; refused while other jobs use it or it runs, unless forced."""
        with self._lock:
            folder = self.existing_folder(job_id)
            users = self.index.dependents(job_id)
            if users and not force:
                raise JobConflictError(f"job {job_id} is used by {', '.join(users)}; delete those first, "
                                  "or force the delete (they will fail to run again)", related=users)
            handle = self._current_worker(job_id)
            if handle is not None:
                if not force:
                    raise JobConflictError(f"job {job_id} is running; abort it first, or force the delete")
                self._kill_now(handle)
            remove_job_folder(folder)
            self.index.remove(job_id)
            self._specs.pop(job_id, None)
        self.wake()

    # --- internals -----------------------------------------------------------------------------

    def _server_write(self, folder: JobFolder, change: Callable[[JobState], JobState]) -> JobState | None:
        """Apply `change` to state.json while holding the worker lock; None when a worker holds it."""
        lock = JobLock(folder.lock_file)
        if not lock.acquire(blocking=False):
            return None
        with lock:
            before = folder.state()
            after = change(before)
            if after is not before:
                folder.write_state(after)
        self.index.refresh(folder)
        return after

    def _current_worker(self, job_id: str) -> WorkerHandle | None:
        """The job's worker while it runs. One that wrote its final state gets a moment to exit (it is
        tearing down), and one that has exited is settled, so the caller sees the job as it is."""
        handle = self._workers.get(job_id)
        if handle is None:
            return None
        if handle.folder.state().status in TERMINAL:
            deadline = time.monotonic() + EXIT_GRACE_S
            while handle.alive() and time.monotonic() < deadline:
                time.sleep(0.02)
        if not handle.alive():
            self._finish(handle)
        return self._workers.get(job_id)

    def _fail(self, folder: JobFolder, message: str) -> None:
        error = {"message": message, "field": None}
        self._server_write(folder, lambda s: s.moved_to(Status.FAILED, error=error))

    def _kill_now(self, handle: WorkerHandle, timeout_s: float = 10.0) -> None:
        handle.kill()
        deadline = time.monotonic() + timeout_s
        while handle.alive() and time.monotonic() < deadline:
            time.sleep(0.02)  # the kernel reaps a SIGKILLed process within milliseconds
        self._workers.pop(handle.job_id, None)
        handle.reap_group()

    def _watch_workers(self) -> None:
        for handle in list(self._workers.values()):
            try:
                self._watch(handle)
            except FileNotFoundError:  # deleted under us
                self._workers.pop(handle.job_id, None)
            except (OSError, ValueError, TypeError):  # one bad folder must not hide the others
                log.exception("cannot follow job %s", handle.job_id)

    def _watch(self, handle: WorkerHandle) -> None:
        mtime = handle.folder.state_file.stat().st_mtime_ns
        if mtime != handle.state_mtime_ns:
            handle.state_mtime_ns = mtime
            self.index.refresh(handle.folder)
        if handle.alive():
            if handle.abort_deadline is not None and time.time() > handle.abort_deadline:
                log.warning("job %s did not stop within %g s of SIGTERM; sending SIGKILL",
                            handle.job_id, self.settings.abort_grace_s)
                handle.kill()
                handle.abort_deadline = float("inf")
            return
        self._finish(handle)

    def _finish(self, handle: WorkerHandle) -> None:
        """The worker is gone: keep the final state it wrote, or say why it has none."""
        folder = handle.folder
        aborted = folder.abort_requested()
        cause = _describe_exit(handle.exit_code())

        def settle(state: JobState) -> JobState:
            if state.status in TERMINAL:
                return state
            if state.status == Status.STARTING and handle.process is None:
                # Launched by a server that died before its worker took the lock: it never ran.
                return state.moved_to(Status.QUEUED, token=None, gpus=[])
            if aborted:
                return state.moved_to(Status.ABORTED)
            if state.status == Status.STARTING:
                return state.moved_to(Status.FAILED, error={
                    "message": f"the worker did not start: {cause}; see the job log", "field": None})
            return state.moved_to(Status.INTERRUPTED, error={
                "message": f"the worker stopped before finishing: {cause}; resume the job to continue "
                           "from its latest snapshot", "field": None})

        if self._server_write(folder, settle) is None:
            return  # still held: the worker is alive after all
        handle.reap_group()
        folder.clear_abort()
        self._workers.pop(handle.job_id, None)
        self.wake()

    def _start_queued(self) -> None:
        requests = []
        for job_id in self.index.ids_with_status(Status.QUEUED):
            try:
                spec = self.spec(job_id)
            except (OSError, ValueError, TypeError):
                log.exception("job %s cannot be read; it stays queued", job_id)
                continue
            statuses = self.index.statuses(spec.waits_for)
            problem = _dependency_failure(spec.waits_for, statuses)
            if problem is None and any(statuses[needed] != Status.DONE for needed in spec.waits_for):
                continue
            problem = problem or unsatisfiable(Request(job_id, spec.gpus), self.settings.gpus)
            if problem:
                self._fail(self.folder(job_id), problem)
                continue
            requests.append(Request(job_id, spec.gpus))
        if not requests:
            return
        busy_gpus = {gpu for handle in self._workers.values() for gpu in handle.gpus}
        busy_cpu = sum(1 for handle in self._workers.values() if not handle.gpus)
        for grant in plan(requests, self.settings.gpus, busy_gpus, self.settings.cpu_slots, busy_cpu):
            self._launch(self.folder(grant.job_id), grant.gpus)

    def _launch(self, folder: JobFolder, gpus: list[str]) -> None:
        token = secrets.token_hex(16)
        now = time.time()
        state = self._server_write(folder, lambda s: s.moved_to(
            Status.STARTING, token=token, gpus=gpus, launched_at=now, pid=None, proc_start=None,
            boot_id=None, started_at=None, finished_at=None, error=None, runs=s.runs + 1))
        if state is None:
            log.warning("job %s is queued but a process holds its lock; not starting it", folder.id)
            return
        try:
            process = spawn_worker(folder, token, gpus, self.cpu_threads)
        except OSError as exc:
            self._fail(folder, f"could not start the worker process: {exc}")
            return
        self._workers[folder.id] = WorkerHandle(folder, gpus, now, process)

