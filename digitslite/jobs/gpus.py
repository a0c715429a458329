"""The machine's NVIDIA GPUs, asked from nvidia-smi so that the server never imports torch."""
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

_QUERY = "index,name,memory.total,memory.used,utilization.gpu"


@dataclass(frozen=True)
class GpuInfo:
    id: str
    name: str
    memory_total_mib: float | None
    memory_used_mib: float | None
    utilization_percent: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # "[N/A]" on some boards
        return None


def query_gpus(timeout_s: float = 5.0) -> list[GpuInfo]:
    """The GPUs nvidia-smi reports now; empty when there is no driver or no GPU."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        out = subprocess.run([tool, f"--query-gpu={_QUERY}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=timeout_s, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 5:
            gpus.append(GpuInfo(parts[0], parts[1], _number(parts[2]), _number(parts[3]), _number(parts[4])))
    return gpus
