"""Worker processes as the server sees them: started in their own session, watched, signalled."""
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import digitslite
from digitslite.jobs.folder import JobFolder
from digitslite.jobs.lock import is_held
from digitslite.jobs.model import Status
from digitslite.jobs.procs import is_same_process, process_running, signal_group

TOKEN_ENV = "DIGITSLITE_RUN_TOKEN"
# Without /proc, a re-attached job still "starting" has this long to show its worker before it
# counts as never started (a worker takes its lock within a second of starting).
START_GRACE_S = 30.0
_PACKAGE_ROOT = str(Path(digitslite.__file__).resolve().parents[1])


def worker_arguments(folder: JobFolder) -> list[str]:
    return ["-m", "digitslite.worker", str(folder.path)]


def spawn_worker(folder: JobFolder, token: str, gpus: list[str], cpu_threads: int) -> subprocess.Popen:
    """Start `python -m digitslite.worker JOBDIR` as the leader of a new session.

    Its own session keeps it alive when the server dies, and lets abort signal the whole group
    (data loader children included). Output goes straight to the job's log file, never through a
    pipe that would break with the server. A job on a CPU slot gets its share of the cores as
    its thread count, so that jobs side by side do not fight over every core.
    """
    env = dict(os.environ)
    if not gpus:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(cpu_threads)
    env[TOKEN_ENV] = token
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # number GPUs as nvidia-smi does
    env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
    with open(folder.log_file, "ab") as log:
        return subprocess.Popen([sys.executable, *worker_arguments(folder)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=folder.path, env=env, start_new_session=True, close_fds=True)


@dataclass
class WorkerHandle:
    """A worker the server started, or re-attached to after a restart (then `process` is None)."""

    folder: JobFolder
    gpus: list[str]
    launched_at: float
    process: subprocess.Popen | None = None
    abort_deadline: float | None = None
    state_mtime_ns: int = 0

    @property
    def job_id(self) -> str:
        return self.folder.id

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        if is_held(self.folder.lock_file):
            return True
        if self.folder.state().status != Status.STARTING:
            return False
        # Launched, but not holding its lock (yet): look for the process itself.
        running = process_running(worker_arguments(self.folder))
        return running if running is not None else time.time() - self.launched_at < START_GRACE_S

    def exit_code(self) -> int | None:
        return self.process.returncode if self.process is not None else None

    def _group(self) -> int | None:
        """The worker's process group, only while it is certainly still our worker."""
        if self.process is not None:
            return self.process.pid if self.process.poll() is None else None
        state = self.folder.state()
        return state.pid if is_same_process(state.pid, state.proc_start, state.boot_id) else None

    def stop(self) -> bool:
        """SIGTERM to the worker alone: it stops its own helpers (encoder pools, ranks, data loaders)
        in order, which a SIGTERM to each of them would break mid-message."""
        leader = self._group()
        if leader is None:
            return False
        try:
            os.kill(leader, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> bool:
        """SIGKILL to the worker's whole process group."""
        group = self._group()
        return group is not None and signal_group(group, signal.SIGKILL)

    def reap_group(self) -> None:
        """Kill what a dead worker of ours may have left behind (forked data loaders)."""
        if self.process is not None:
            signal_group(self.process.pid, signal.SIGKILL)
