"""Training on this node's ranks: the launching side, and each rank's entry point.

The dispatch (digitslite.engine.dispatch) comes here when a config asks for ranks. This process
then trains nothing itself: it starts this node's ranks (digitslite.engine.local_ranks), each
training in its own process as the rank its variables name, forwards should_stop as SIGTERM,
relays rank 0's metrics records to `progress`, and returns rank 0's result.

`<job>/ranks.json` says who runs (ranks, pids, GPUs) and how it ended: "done", "stopped", or
"interrupted" with the reason when a rank died (all ranks are then killed; resume from the latest
snapshot) or "failed" with the message when a rank refused the input. A refusal is reported as one
message, as in one process; a rank that crashed has its traceback printed once, on stderr.
"""
import dataclasses
import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from google.protobuf.message import Message

from digitslite.caffe import caffe_pb2
from digitslite.engine.launch import RanksInterrupted, Rendezvous, describe_exit, free_port, parse_master
from digitslite.engine.local_ranks import LocalRanks
from digitslite.engine.snapshot import read_snapshot
from digitslite.engine.speed import resolve_device
from digitslite.engine.train import TrainConfig, TrainResult
from digitslite.errors import UserError
from digitslite.fileio import write_json_atomically
from digitslite.layout import RANKS_FILE

Progress = Callable[[dict[str, Any]], None]
# How a rank trains: the dispatch's training in this process, `(config, job_dir, *, should_stop,
# progress) -> TrainResult`, handed in (and pickled by name) so that this module needs no dispatch.
TrainHere = Callable[..., TrainResult]
_REFUSED = f"{UserError.__name__}: "     # how torch's error file records a rank that refused its input


class _Message(NamedTuple):
    """A Caffe message on its way to a rank, as its binary form: protoc's classes name their module
    'caffe_pb2', which pickle cannot import."""

    kind: str
    data: bytes


def _portable(config: TrainConfig) -> dict[str, Any]:
    """The config's fields, picklable."""
    fields = {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}
    return {name: _Message(type(value).__name__, value.SerializeToString()) if isinstance(value, Message)
            else value for name, value in fields.items()}


def _config(fields: dict[str, Any]) -> TrainConfig:
    return TrainConfig(**{name: getattr(caffe_pb2, value.kind).FromString(value.data)
                          if isinstance(value, _Message) else value for name, value in fields.items()})


def _gpu_ids(config: TrainConfig) -> list[str]:
    """One GPU id per local rank: the configured ones, else the first visible ones; none on the CPU."""
    if config.gpus:
        if config.device == "cpu":
            raise UserError("GPUs were named for the ranks (--gpus) but the CPU was asked for (--cpu); "
                            "give one of them")
        if config.ranks not in (1, len(config.gpus)):
            raise UserError(f"{config.ranks} ranks were asked for on {len(config.gpus)} GPUs "
                            f"({', '.join(config.gpus)}); give one rank per GPU, or leave out the rank count")
        return [str(gpu) for gpu in config.gpus]
    if resolve_device(config.device).type != "cuda":
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [gpu for gpu in visible.split(",") if gpu] if visible is not None else \
        [str(index) for index in range(torch.cuda.device_count())]
    wanted = config.processes_per_node
    if len(ids) < wanted:
        raise UserError(f"{wanted} ranks need {wanted} GPUs but {len(ids)} are visible; "
                        "start fewer ranks, or train on the CPU (--cpu)")
    return ids[:wanted]


def _rendezvous(config: TrainConfig, ranks_per_node: int) -> Rendezvous:
    if ranks_per_node < 1 or config.nnodes < 1:
        raise UserError(f"ranks {ranks_per_node} and nnodes {config.nnodes}: both must be at least 1")
    if not 0 <= config.node_rank < config.nnodes:
        raise UserError(f"node rank {config.node_rank} is not in [0, {config.nnodes}); number the nodes "
                        "0 to nnodes - 1, node 0 being the one at --master")
    if config.master is None:
        if config.nnodes > 1:
            raise UserError(f"{config.nnodes} nodes need a meeting point: give --master ADDR:PORT, the "
                            "address of node 0 and a free port on it, to every node")
        return Rendezvous(ranks_per_node, master_port=free_port())
    address, port = parse_master(config.master)
    return Rendezvous(ranks_per_node, config.nnodes, config.node_rank, address, port)


def _rank_environments(gpus: list[str], ranks_per_node: int) -> list[dict[str, str]]:
    """What each rank gets beyond torchrun's variables: a share of the CPU threads (as torchrun, do
    not let every rank start a thread per core, unless the caller chose), and its GPU if any."""
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // ranks_per_node))
    if gpus:
        return [{"OMP_NUM_THREADS": threads, "CUDA_VISIBLE_DEVICES": gpu} for gpu in gpus]
    return [{"OMP_NUM_THREADS": threads}] * ranks_per_node


class _ProgressRelay:
    """Hands the records rank 0 appends to the progress file on to `progress`, whole lines only."""

    def __init__(self, path: Path, progress: Callable[[dict[str, Any]], None] | None) -> None:
        self.path, self.progress, self.offset = path, progress, 0

    def __call__(self) -> None:
        if self.progress is None or not self.path.is_file():
            return
        with self.path.open("rb") as stream:
            stream.seek(self.offset)
            data = stream.read()
        complete = data[:data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.splitlines():
            self.progress(json.loads(line))


def train_on_local_ranks(config: TrainConfig, job_dir: Path, should_stop: Callable[[], bool] | None,
                         progress: Progress | None, train_here: TrainHere) -> TrainResult:
    """Start this node's ranks, wait for them, and return what rank 0 (or this node's first) reports."""
    gpus = _gpu_ids(config)
    ranks_per_node = len(gpus) or config.processes_per_node
    rendezvous = _rendezvous(config, ranks_per_node)
    status: dict[str, Any] = {"nnodes": rendezvous.nnodes, "node_rank": rendezvous.node_rank,
                              "world_size": rendezvous.world_size,
                              "master": f"{rendezvous.master_addr}:{rendezvous.master_port}"}
    rank_config = dataclasses.replace(config, ranks=1, gpus=(), nnodes=1, node_rank=0, master=None)
    with tempfile.TemporaryDirectory(prefix="digitslite-progress-") as folder:
        records = Path(folder) / "progress.jsonl"
        relay = _ProgressRelay(records, progress)
        args = (train_here, _portable(rank_config), job_dir, records)
        with LocalRanks(_rank_main, args, rendezvous, _rank_environments(gpus, ranks_per_node)) as ranks:
            status["ranks"] = [{"rank": rendezvous.environment(local).rank, "local_rank": local, "pid": pid,
                                "gpu": gpus[local] if gpus else None} for local, pid in enumerate(ranks.pids)]
            _write_status(job_dir, status, "running")
            try:
                results = ranks.wait(should_stop, relay)
            except RanksInterrupted as exc:
                relay()
                if exc.raised is not None and exc.raised.startswith(_REFUSED):
                    refusal = exc.raised.removeprefix(_REFUSED)
                    _write_status(job_dir, status, "failed", refusal)
                    raise UserError(refusal) from None
                rank = rendezvous.environment(exc.local_rank).rank
                if exc.traceback is not None:
                    print(f"rank {rank} failed:\n{exc.traceback.rstrip()}", file=sys.stderr, flush=True)
                how = f"failed with {exc.raised}" if exc.raised is not None else describe_exit(exc.returncode)
                reason = (f"rank {rank} (pid {exc.pid}) {how}, so every rank of this node was stopped; "
                          "resume to continue from the latest snapshot")
                _write_status(job_dir, status, "interrupted", reason)
                raise RanksInterrupted(reason, exc.local_rank, exc.pid, exc.returncode) from None
        relay()
    if results is None:
        _write_status(job_dir, status, "stopped", "stopped while the ranks were starting, before any "
                                                  "iteration: there was nothing new to snapshot")
        return TrainResult(read_snapshot(config.resume).iteration if config.resume else 0, True)
    result = results[0]
    _write_status(job_dir, status, "stopped" if result.stopped else "done")
    return result


def _write_status(job_dir: Path, status: dict[str, Any], state: str, reason: str | None = None) -> None:
    write_json_atomically(job_dir / RANKS_FILE, {**status, "status": state, "reason": reason}, durable=False)


# ----------------------------------------------------------------------------------------------
# in a rank


def _rank_main(train_here: TrainHere, fields: dict[str, Any], job_dir: Path, records: Path) -> TrainResult:
    """One rank's training; SIGTERM asks it to stop with the others. A refusal (UserError) goes to
    torch's error file under the one name the launcher knows."""
    stop_requested: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop_requested.append(signum))
    progress = None
    if os.environ["RANK"] == "0":
        stream = records.open("a", encoding="utf-8")

        def progress(record: dict[str, Any]) -> None:
            stream.write(json.dumps(record) + "\n")
            stream.flush()
    try:
        return train_here(_config(fields), job_dir, should_stop=lambda: bool(stop_requested),
                          progress=progress)
    except UserError as exc:
        raise UserError(str(exc)) from None
