"""A job folder under the jobs directory: the files it holds and how they are read and written."""
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from digitslite.fileio import fsync_dir, read_json, write_json_atomically
from digitslite.jobs.job import JobSpec, JobState
from digitslite.layout import SOLVERSTATE_SUFFIX, JobFiles, snapshot_iteration

# Folders of the jobs directory that are not jobs: half-created and half-deleted ones.
NEW_PREFIX = ".new-"
TRASH_PREFIX = ".trash-"


@dataclass(frozen=True)
class Snapshot:
    iteration: int
    weights: Path
    solverstate: Path | None


class JobFolder(JobFiles):
    """A job folder: its paths (named in digitslite.layout), its definition and its state."""

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
            iteration = snapshot_iteration(entry.name)
            if iteration is not None:
                weights = Path(entry.path)
                state = weights.with_suffix(SOLVERSTATE_SUFFIX)
                found.append(Snapshot(iteration, weights, state if state.exists() else None))
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
        files = JobFiles(staging)
        write_json_atomically(files.spec_file, spec.to_dict())
        write_json_atomically(files.state_file, state.to_dict())
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
