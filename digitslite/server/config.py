"""The server's settings: defaults that work with no configuration, overridden by environment
variables (as docker-compose.yml sets them) and then by `digitslite serve` options."""
import ipaddress
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from digitslite.errors import UserError
from digitslite.jobs.gpus import query_gpus

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
# Files of the jobs directory beside the job folders: the job index and the accounts.
INDEX_FILE = "index.sqlite"
USERS_FILE = "users.json"
DEFAULT_MAX_UPLOAD_MB = 1024
DEFAULT_MAX_UNPACK_MB = 4096
DEFAULT_MAX_ARCHIVE_MEMBERS = 10_000
MAX_JSON_BODY_BYTES = 16 * 1024 * 1024  # a JSON request: a 5 MB network text fits three times over


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise UserError(f"environment variable {name}={raw!r} must be a whole number") from None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise UserError(f"environment variable {name}={raw!r} must be a number") from None


def _env_names(name: str) -> tuple[str, ...]:
    """A comma-separated list of host names, lower case."""
    return tuple(part.strip().lower() for part in os.environ.get(name, "").split(",") if part.strip())


def _env_gpus() -> list[str] | None:
    """DIGITSLITE_GPUS: "none", or a comma list of ids; unset means ask nvidia-smi."""
    raw = os.environ.get("DIGITSLITE_GPUS")
    if raw is None:
        return None
    raw = raw.strip()
    return [] if raw in ("", "none") else [part.strip() for part in raw.split(",") if part.strip()]


@dataclass(frozen=True)
class ServerConfig:
    jobs_dir: Path = Path("jobs")
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # Server-side folders a dataset or inference request may name; nothing outside them is read.
    data_roots: tuple[Path, ...] = (Path("data"),)
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024
    max_unpack_bytes: int = DEFAULT_MAX_UNPACK_MB * 1024 * 1024  # what one uploaded archive may unpack to
    max_archive_members: int = DEFAULT_MAX_ARCHIVE_MEMBERS
    insecure: bool = False
    # Host names (besides the address it listens on) that requests may name in their Host header.
    allowed_hosts: tuple[str, ...] = ()
    gpus: list[str] | None = None  # None: detect with nvidia-smi
    cpu_slots: int = 2
    abort_grace_s: float = 10.0
    poll_interval_s: float = 0.25
    scheduler: bool = True  # off only for tools that read the jobs without running any

    @classmethod
    def from_env(cls, **overrides: Any) -> "ServerConfig":
        """Settings from DIGITSLITE_* environment variables, then `overrides` (None values ignored)."""
        roots = os.environ.get("DIGITSLITE_DATA_ROOTS")
        config = cls(
            jobs_dir=Path(os.environ.get("DIGITSLITE_JOBS_DIR") or "jobs"),
            data_roots=tuple(Path(p) for p in roots.split(os.pathsep) if p) if roots else (Path("data"),),
            max_upload_bytes=_env_int("DIGITSLITE_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB) * 1024 * 1024,
            max_unpack_bytes=_env_int("DIGITSLITE_MAX_UNPACK_MB", DEFAULT_MAX_UNPACK_MB) * 1024 * 1024,
            max_archive_members=_env_int("DIGITSLITE_MAX_ARCHIVE_MEMBERS", DEFAULT_MAX_ARCHIVE_MEMBERS),
            allowed_hosts=_env_names("DIGITSLITE_ALLOWED_HOSTS"),
            gpus=_env_gpus(),
            cpu_slots=_env_int("DIGITSLITE_CPU_SLOTS", max(1, (os.cpu_count() or 2) // 2)),
            abort_grace_s=_env_float("DIGITSLITE_ABORT_GRACE_S", 10.0),
        )
        return replace(config, **{key: value for key, value in overrides.items() if value is not None})

    def resolved(self) -> "ServerConfig":
        """Absolute paths, detected GPUs, and every setting checked."""
        if self.cpu_slots < 1:
            raise UserError(f"DIGITSLITE_CPU_SLOTS={self.cpu_slots} must be at least 1")
        if not 0 <= self.port < 65536:
            raise UserError(f"--port {self.port} must be between 1 and 65535 (or 0 for any free port)")
        gpus = self.gpus if self.gpus is not None else [gpu.id for gpu in query_gpus()]
        return replace(self, jobs_dir=self.jobs_dir.expanduser().resolve(),
                       data_roots=tuple(root.expanduser().resolve() for root in self.data_roots), gpus=gpus)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
