"""What a job is: its definition (job.json, fixed at creation) and its lifecycle state (state.json)."""
import dataclasses
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    ABORTED = "aborted"
    INTERRUPTED = "interrupted"


TERMINAL = frozenset({Status.DONE, Status.FAILED, Status.ABORTED, Status.INTERRUPTED})
RESUMABLE = frozenset({Status.FAILED, Status.ABORTED, Status.INTERRUPTED})


def new_job_id(now: float | None = None) -> str:
    """Sortable and readable like DIGITS' ids (date-time), with enough randomness to never collide."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now if now is not None else time.time()))
    return f"{stamp}-{secrets.token_hex(3)}"


def _known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Drop keys this version does not know, so a newer job folder still loads."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {key: value for key, value in data.items() if key in names}


@dataclass
class JobSpec:
    """The job's definition, written once into job.json when the job is created."""

    id: str
    kind: str
    name: str
    owner: str
    created: float
    params: dict[str, Any]
    group: str = ""
    notes: str = ""
    priority: int = 0
    # Jobs whose files this one uses: deleting one of them is refused while this job exists.
    depends_on: list[str] = field(default_factory=list)
    # The subset that must be done before this job may start (a model's dataset).
    waits_for: list[str] = field(default_factory=list)
    # GPU request: a count ("any n free GPUs") or a list of GPU ids; 0 runs on a CPU slot.
    gpus: int | list[str] = 0
    # CPU slots a job without GPUs takes: one per process that trains (a pipeline: one per stage).
    cpu_slots: int = 1
    format: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobSpec":
        return cls(**_known_fields(cls, data))

    @property
    def gpu_count(self) -> int:
        return len(self.gpus) if isinstance(self.gpus, list) else int(self.gpus)


@dataclass
class JobState:
    """The job's lifecycle, in state.json.

    Written only by the holder of the job's worker lock: the worker while it runs, the server
    otherwise. That single-writer rule is what keeps the file consistent across crashes.
    """

    status: Status = Status.QUEUED
    history: list[list[Any]] = field(default_factory=list)
    progress: float = 0.0
    message: str = ""
    error: dict[str, Any] | None = None
    # Set by the server when it launches a worker; the worker refuses to run with another token.
    token: str | None = None
    gpus: list[str] = field(default_factory=list)
    launched_at: float | None = None
    # Set by the worker: enough to re-attach after a server restart and to tell a recycled pid.
    pid: int | None = None
    proc_start: int | None = None
    boot_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    runs: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["status"] = str(self.status)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobState":
        state = cls(**_known_fields(cls, data))
        state.status = Status(state.status)
        return state

    def moved_to(self, status: Status, **changes: Any) -> "JobState":
        """A copy in `status`, with the transition recorded in the history."""
        now = time.time()
        history = [*self.history, [str(status), now]]
        if status in TERMINAL:
            changes.setdefault("finished_at", now)
        return dataclasses.replace(self, status=status, history=history, **changes)
