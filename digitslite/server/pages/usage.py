"""What a running job uses: CPU and resident memory of its worker's process group (data loaders
included) read from /proc, and its GPUs from nvidia-smi. CPU is a rate, so it needs two readings:
the first poll of a worker gives None."""
import os
import threading
import time
from pathlib import Path
from typing import Any

from digitslite.jobs.gpus import query_gpus

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_readings: dict[int, tuple[float, int]] = {}  # worker pid -> (monotonic time, CPU ticks)
_lock = threading.Lock()


def _group_totals(group: int) -> tuple[int, int, int]:
    """(CPU ticks, resident bytes, processes) of every process whose process group is `group`."""
    ticks = resident = count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == group:  # fields after the command: state, ppid, pgrp, ...
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
            resident += int(fields[21]) * _PAGE_SIZE
            count += 1
    return ticks, resident, count


def worker_usage(pid: int | None, gpu_ids: list[str]) -> dict[str, Any]:
    usage: dict[str, Any] = {"cpu_percent": None, "memory_bytes": None, "processes": 0,
                             "gpus": [gpu.to_dict() for gpu in query_gpus() if gpu.id in gpu_ids]}
    if pid is None or not Path(f"/proc/{pid}").exists():
        return usage
    ticks, usage["memory_bytes"], usage["processes"] = _group_totals(pid)
    now = time.monotonic()
    with _lock:
        for gone in [old for old in _readings if not Path(f"/proc/{old}").exists()]:
            del _readings[gone]
        before = _readings.get(pid)
        _readings[pid] = (now, ticks)
    if before is not None and now > before[0]:
        usage["cpu_percent"] = 100.0 * (ticks - before[1]) / _CLOCK_TICKS / (now - before[0])
    return usage
