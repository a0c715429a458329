"""A job folder under the jobs directory: the files it holds and how they are read and written."""
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from digitslite.fileio import fsync_dir, read_json, write_json_atomically
from digitslite.jobs.model import JobSpec, JobState

SNAPSHOT_PATTERN = re.compile(r"^(?P<prefix>.+)_iter_(?P<iteration>\d+)\.caffemodel$")
# Folders of the jobs directory that are not jobs: half-created and half-deleted ones.
NEW_PREFIX = ".new-"
TRASH_PREFIX = ".trash-"
INPUTS_DIR = "inputs"


@dataclass(frozen=True)
class Snapshot:
    iteration: int
    weights: Path
    solverstate: Path | None


class JobFolder:
    def __init__(self, path: Path):
        self.path = path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def spec_file(self) -> Path:
        return self.path / "job.json"

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.path / "worker.lock"

    @property
    def log_file(self) -> Path:
        return self.path / "log.txt"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def inputs_dir(self) -> Path:
        """Uploaded files the job was created from; its parameters name them relative to this folder."""
        return self.path / INPUTS_DIR

    @property
    def abort_marker(self) -> Path:
        """Present while an abort is requested, so that it survives a server restart."""
        return self.path / "abort.requested"

    def spec(self) -> JobSpec:
        return JobSpec.from_dict(read_json(self.spec_file))

    def state(self) -> JobState:
        return JobState.from_dict(read_json(self.state_file))

    def write_state(self, state: JobState, *, durable: bool = True) -> None:
        write_json_atomically(self.state_file, state.to_dict(), durable=durable)

    def request_abort(self) -> None:
        self.abort_marker.touch()

    def abort_requested(self) -> bool:
        return self.abort_marker.exists()

    def clear_abort(self) -> None:
        self.abort_marker.unlink(missing_ok=True)

    def snapshots(self) -> list[Snapshot]:
        """The model snapshots in the folder, oldest first."""
        found = []
        for entry in os.scandir(self.path):
            match = SNAPSHOT_PATTERN.match(entry.name)
            if match:
                weights = Path(entry.path)
                state = weights.with_suffix(".solverstate")
                found.append(Snapshot(int(match["iteration"]), weights, state if state.exists() else None))
        return sorted(found, key=lambda snap: snap.iteration)


def create_job_folder(jobs_dir: Path, spec: JobSpec, state: JobState,
                      prepare: Callable[[Path], None] | None = None) -> JobFolder:
    """Build the folder under a hidden name, then rename it into place: it appears whole or not at all.

    `prepare` fills the folder first (uploaded files, the network text); if it raises, nothing is
    left behind.
    """
    staging = jobs_dir / f"{NEW_PREFIX}{spec.id}"
    staging.mkdir(parents=True)
    try:
        if prepare is not None:
            prepare(staging)
        write_json_atomically(staging / "job.json", spec.to_dict())
        write_json_atomically(staging / "state.json", state.to_dict())
        os.rename(staging, jobs_dir / spec.id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_dir(jobs_dir)
    return JobFolder(jobs_dir / spec.id)


def remove_job_folder(folder: JobFolder) -> None:
    """Rename first (atomic, so the job is gone at once), then delete the files."""
    trash = folder.path.with_name(f"{TRASH_PREFIX}{folder.id}")
    os.rename(folder.path, trash)
    fsync_dir(folder.path.parent)
    shutil.rmtree(trash, ignore_errors=True)


def clear_leftovers(jobs_dir: Path) -> None:
    """Remove folders a killed server left half-created or half-deleted."""
    for entry in os.scandir(jobs_dir):
        if entry.is_dir() and entry.name.startswith((NEW_PREFIX, TRASH_PREFIX)):
            shutil.rmtree(entry.path, ignore_errors=True)


def is_job_folder_name(name: str) -> bool:
    return not name.startswith(".")
