"""torchrun's conventions: the rank environment, and starting this node's ranks as torchrun would.

A rank learns its place from the variables RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
MASTER_ADDR and MASTER_PORT, whoever set them: torchrun, a Slurm job script, or LocalRanks here.
(No torch import: launching and watching processes needs none.)

Each rank is a child process in its own process group (so that killing it takes its DataLoader
workers too) with torchrun's variables set. A rank dies with this launcher: it asks the kernel
for SIGKILL when its parent goes (die_with_parent), so even a SIGKILLed launcher leaves nothing
behind. When one rank ends with an error, the others cannot go on (they would wait in a collective
for ever): the launcher kills every rank and reports which one failed and how.
"""
import contextlib
import ctypes
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from digitslite.errors import UserError

PARENT_PID = "DIGITSLITE_LAUNCHER_PID"
EXIT_INTERRUPTED = 75         # EX_TEMPFAIL, a command's exit code on RanksInterrupted: resume it
WATCH_INTERVAL_S = 0.1        # how often should_stop and the progress are looked at
_PR_SET_PDEATHSIG = 1


def _integer(environ: Mapping[str, str], name: str, default: int | None = None) -> int:
    text = environ.get(name)
    if text is None and default is not None:
        return default
    try:
        return int(text)
    except (TypeError, ValueError):
        raise UserError(f"the environment variable {name} is {text!r}; a rank needs it as a whole number, "
                        "as torchrun sets it (see docs/SCALING.md)") from None


@dataclass(frozen=True)
class RankEnvironment:
    """torchrun's description of one rank."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    master_addr: str
    master_port: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> "RankEnvironment | None":
        """The rank this process was started as, or None when no launcher set RANK and WORLD_SIZE."""
        if "RANK" not in environ or "WORLD_SIZE" not in environ:
            return None
        world_size = _integer(environ, "WORLD_SIZE")
        rank = _integer(environ, "RANK")
        if not 0 <= rank < world_size:
            raise UserError(f"RANK is {rank} but WORLD_SIZE is {world_size}; "
                            "RANK must lie in [0, WORLD_SIZE)")
        missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not environ.get(name)]
        if missing and world_size > 1:
            raise UserError(f"{' and '.join(missing)} not set: every rank needs the address of rank 0 "
                            "(torchrun sets them; under Slurm export them as docs/SCALING.md shows)")
        return cls(rank, world_size, _integer(environ, "LOCAL_RANK", 0),
                   _integer(environ, "LOCAL_WORLD_SIZE", 1), environ.get("MASTER_ADDR", "127.0.0.1"),
                   _integer(environ, "MASTER_PORT", 0))

    def variables(self) -> dict[str, str]:
        """The environment a launcher gives the process of this rank."""
        return {"RANK": str(self.rank), "WORLD_SIZE": str(self.world_size),
                "LOCAL_RANK": str(self.local_rank), "LOCAL_WORLD_SIZE": str(self.local_world_size),
                "MASTER_ADDR": self.master_addr, "MASTER_PORT": str(self.master_port)}


class RanksInterrupted(Exception):  # noqa: N818 - an outcome the job server reports as "interrupted"
    """A rank ended before the others (killed, or crashed): every rank was stopped; the run continues
    from its latest snapshot when resumed."""

    def __init__(self, message: str, local_rank: int, pid: int, returncode: int) -> None:
        super().__init__(message)
        self.local_rank, self.pid, self.returncode = local_rank, pid, returncode


@dataclass(frozen=True)
class Rendezvous:
    """Where the ranks of all nodes meet (torchrun's static rendezvous): node `node_rank` of `nnodes`
    starts `ranks_per_node` ranks; global rank = node_rank · ranks_per_node + local rank."""

    ranks_per_node: int
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 0

    @property
    def world_size(self) -> int:
        return self.nnodes * self.ranks_per_node

    def environment(self, local_rank: int) -> RankEnvironment:
        return RankEnvironment(self.node_rank * self.ranks_per_node + local_rank, self.world_size, local_rank,
                               self.ranks_per_node, self.master_addr, self.master_port)


def parse_master(text: str) -> tuple[str, int]:
    """"ADDR:PORT" (an IPv6 address in brackets: "[::1]:29500") -> (address, port)."""
    address, _, port = text.rpartition(":")
    address = address.strip("[]")
    if not address or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--master {text!r}: give the address and port of node 0 as ADDR:PORT, "
                        "e.g. 10.0.0.1:29500")
    return address, int(port)


def free_port() -> int:
    """A TCP port free on this machine now, for a rendezvous that stays on it (as torchrun's standalone)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def die_with_parent() -> None:
    """Called first thing in a rank: be killed when the launcher ends, however it ends (Linux).
    If it has already gone between our start and this call, end now."""
    expected = os.environ.get(PARENT_PID)
    if expected is None or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(expected):
        os._exit(1)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


class LocalRanks:
    """The rank processes of this node while they run; leaving the `with` block kills what is left."""

    def __init__(self, command: Sequence[str], rendezvous: Rendezvous,
                 extra_env: Sequence[Mapping[str, str]]) -> None:
        """`extra_env[i]`: variables of local rank i beyond torchrun's (CUDA_VISIBLE_DEVICES, ...)."""
        self.processes: list[subprocess.Popen] = []
        try:
            for local_rank in range(rendezvous.ranks_per_node):
                env = {**os.environ, **rendezvous.environment(local_rank).variables(),
                       **extra_env[local_rank], PARENT_PID: str(os.getpid())}
                self.processes.append(subprocess.Popen(list(command), env=env, start_new_session=True,
                                                       stdin=subprocess.DEVNULL))
        except BaseException:
            self.kill()
            raise

    def __enter__(self) -> "LocalRanks":
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def wait(self, should_stop: Callable[[], bool] | None = None,
             watch: Callable[[], None] | None = None) -> bool:
        """Until every rank has ended. `watch` runs every WATCH_INTERVAL_S; when `should_stop` turns
        true each rank gets SIGTERM (they stop together at the end of an iteration). Raises
        RanksInterrupted, with every rank killed, as soon as one fails.

        True when every rank ended cleanly. False when the SIGTERM of a stop reached a rank still
        starting, before it could handle it: it died of it, and the others were killed. No rank can
        train before all have started, so that run made no progress."""
        stop_sent = False
        exits = _ExitWatch(self.processes)
        try:
            while True:
                if watch is not None:
                    watch()
                if not stop_sent and should_stop is not None and should_stop():
                    self.signal(signal.SIGTERM)
                    stop_sent = True
                codes = [process.poll() for process in self.processes]
                failed = next((index for index, code in enumerate(codes) if code not in (None, 0)), None)
                if failed is not None:
                    self.kill()
                    pid, code = self.processes[failed].pid, codes[failed]
                    if stop_sent and code == -signal.SIGTERM:
                        return False
                    raise RanksInterrupted(f"local rank {failed} (pid {pid}) {describe_exit(code)}; "
                                           "the other ranks were stopped", failed, pid, code)
                if all(code == 0 for code in codes):
                    return True
                exits.wait(WATCH_INTERVAL_S)
        finally:
            exits.close()

    def signal(self, sig: signal.Signals) -> None:
        """`sig` to each running rank's main process only (its data loader workers must not get it)."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL every rank's process group (the rank, and its data loader workers even when the rank
        itself has ended: a group id stays taken while a member lives), and reap the ranks."""
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:
            process.wait()


class _ExitWatch:
    """Sleep until a rank exits or the interval passes: on the pidfds of the running ranks where
    Linux has them (an ended rank's pidfd stays readable, so it is left out), else a plain sleep."""

    def __init__(self, processes: Sequence[subprocess.Popen]) -> None:
        self.fds: dict[int, subprocess.Popen] = {}
        if hasattr(os, "pidfd_open"):
            for process in processes:
                with contextlib.suppress(ProcessLookupError):    # already ended: poll() sees it
                    self.fds[os.pidfd_open(process.pid)] = process

    def wait(self, seconds: float) -> None:
        running = [fd for fd, process in self.fds.items() if process.returncode is None]
        if running:
            select.select(running, [], [], seconds)
        else:
            time.sleep(seconds)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
