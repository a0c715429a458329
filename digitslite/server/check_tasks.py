"""The New dataset form's Check as a background task: the request starts a process and returns at once,
and the page polls for the result. No pixel is decoded in a request thread, the checking process has
the encoders' heap limit, and a server runs at most MAX_RUNNING checks at a time.

Each check lives in a scratch folder of the jobs directory (params.json in, result.json out); a server
restart clears such folders, and a checking process whose server is gone ends itself.
"""
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digitslite.fileio import read_json, write_json_atomically
from digitslite.jobs.folder import NEW_PREFIX

MAX_RUNNING = 2  # each check has its own pool of encoder processes
UNCOLLECTED_S = 600  # a finished check nobody asked for in this long (the page was closed) is dropped
PARENT_POLL_S = 1.0
PARAMS_FILE = "params.json"
RESULT_FILE = "result.json"


class ChecksBusyError(Exception):
    """MAX_RUNNING checks are already running."""


@dataclass
class RunningCheck:
    folder: Path
    process: subprocess.Popen
    started: float


@dataclass
class CheckTasks:
    """The checks this server started and has not yet handed back, by id."""

    running: dict[str, RunningCheck] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, params: dict[str, Any], jobs_dir: Path) -> str:
        """Start checking the folders a dataset job's `params` name; return the check's id."""
        with self.lock:
            self._drop_uncollected()
            if sum(check.process.poll() is None for check in self.running.values()) >= MAX_RUNNING:
                raise ChecksBusyError()
            check_id = secrets.token_hex(8)
            folder = jobs_dir / f"{NEW_PREFIX}check-{check_id}"
            folder.mkdir()
            write_json_atomically(folder / PARAMS_FILE, params, durable=False)
            process = subprocess.Popen([sys.executable, "-m", __name__, str(folder), str(os.getpid())],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       start_new_session=True)
            self.running[check_id] = RunningCheck(folder, process, time.monotonic())
            return check_id

    def _drop_uncollected(self) -> None:
        now = time.monotonic()
        for check_id, check in list(self.running.items()):
            if now - check.started > UNCOLLECTED_S and check.process.poll() is not None:
                del self.running[check_id]
                shutil.rmtree(check.folder, ignore_errors=True)

    def result(self, check_id: str) -> dict[str, Any] | None:
        """The finished check's result (handed back once), None while it runs; KeyError if unknown."""
        with self.lock:
            check = self.running[check_id]
            code = check.process.poll()
            if code is None:
                return None
            del self.running[check_id]
        try:
            return read_json(check.folder / RESULT_FILE)
        except FileNotFoundError:
            return {"error": {"message": f"the check stopped before it finished (exit status {code}); "
                                         "press Check again", "field": None}}
        finally:
            shutil.rmtree(check.folder, ignore_errors=True)


def _end_with_parent(parent: int) -> None:
    """A check nobody can collect stops: its server is gone."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def main(folder: Path, parent: int) -> None:
    from digitslite.datasets.encoder import bound_memory
    from digitslite.errors import UserError
    from digitslite.jobs.kinds.dataset import dataset_options
    from digitslite.tasks import task_of

    threading.Thread(target=_end_with_parent, args=(parent,), daemon=True).start()
    bound_memory()
    try:
        params = read_json(folder / PARAMS_FILE)
        result = task_of(params).part("pages").form_check(dataset_options(params, Path()))
    except UserError as exc:
        result = {"error": {"message": str(exc), "field": getattr(exc, "field", None)}}
    write_json_atomically(folder / RESULT_FILE, result, durable=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
