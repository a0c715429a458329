"""Finding the processes a test session started, by the mark in their environment, after the fact."""
import contextlib
import os
import signal
import time
from pathlib import Path

# multiprocessing's helpers live as long as the process that started them (the test process).
_HELPERS = (b"multiprocessing.forkserver", b"multiprocessing.resource_tracker")


def _marked(mark: str) -> dict[int, str]:
    wanted = mark.encode() + b"\0"
    found = {}
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
            command = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(") ", 1)[1][0]
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
        if state in "ZX" or any(helper in command for helper in _HELPERS):
            continue
        if (b"\0" + environ).find(b"\0" + wanted) >= 0:
            found[int(entry.name)] = command.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def stop_leftovers(mark: str, exit_wait_s: float = 10.0) -> list[tuple[int, str]]:
    """The processes still carrying `mark` once those on their way out have had time to exit; each
    is then killed, so that one failed run cannot leave servers behind."""
    deadline = time.monotonic() + exit_wait_s
    while (alive := _marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)  # a process that was just signalled exits within moments
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return sorted(alive.items())
