"""torchrun's conventions: the rank environment, where the ranks meet, and how a run of ranks ends.

A rank learns its place from the variables RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
MASTER_ADDR and MASTER_PORT, whoever set them: torchrun, a Slurm job script, or this node's
launcher (digitslite.engine.local_ranks). No torch import: the server checks --master with it.
"""
import os
import signal
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from digitslite.errors import UserError

EXIT_INTERRUPTED = 75         # EX_TEMPFAIL, a command's exit code on RanksInterrupted: resume it


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

    def __init__(self, message: str, local_rank: int, pid: int, returncode: int,
                 raised: str | None = None, traceback: str | None = None) -> None:
        """`raised`: the exception the rank ended with, as "Type: message", if it raised one, and
        `traceback` its traceback as Python prints it."""
        super().__init__(message)
        self.local_rank, self.pid, self.returncode, self.raised = local_rank, pid, returncode, raised
        self.traceback = traceback


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


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"
