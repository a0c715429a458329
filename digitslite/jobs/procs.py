"""Process identity and signals for workers, each the leader of its own process group."""
import os
import signal
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str | None:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return None


def proc_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None when it is gone or a zombie.

    Together with the boot id it tells a worker apart from an unrelated process that got its pid.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing ")".
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_same_process(pid: int | None, start: int | None, boot: str | None) -> bool:
    """Whether `pid` is still the process that recorded (`start`, `boot`)."""
    if pid is None or start is None:
        return False
    return boot == boot_id() and proc_start_time(pid) == start


def process_running(arguments: list[str]) -> bool | None:
    """Whether a live process's command line ends with `arguments` (whatever the interpreter's
    path); None where there is no /proc to ask."""
    wanted = b"\0" + "\0".join(arguments).encode() + b"\0"
    try:
        entries = os.scandir("/proc")
    except OSError:
        return None
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                found = Path(entry.path, "cmdline").read_bytes().endswith(wanted)
            except OSError:
                continue  # it ended while we looked
            if found and proc_start_time(int(entry.name)) is not None:
                return True
    return False


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send `sig` to the whole process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True
