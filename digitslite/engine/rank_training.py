"""Training on several local ranks: the launching side, and each rank's entry point.

`train()` comes here when its config asks for ranks. This process then trains nothing itself: it
starts the ranks of this node (`python -m digitslite.engine.rank_training RUN_DIR`, with
torchrun's variables), passes them the config through a private run folder, forwards should_stop
as SIGTERM, relays rank 0's metrics records to `progress`, and returns rank 0's result.

`<job>/ranks.json` says who runs (ranks, pids, GPUs) and how it ended: "done", "stopped", or
"interrupted" with the reason when a rank died (all ranks are then killed; resume from the latest
snapshot) or "failed" with the message when a rank refused the input.
"""
import base64
import dataclasses
import json
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from google.protobuf.message import Message

from digitslite.caffe import caffe_pb2
from digitslite.engine.launch import (
    LocalRanks,
    RanksInterrupted,
    Rendezvous,
    describe_exit,
    die_with_parent,
    free_port,
    parse_master,
)
from digitslite.engine.snapshot import read_snapshot
from digitslite.engine.speed import resolve_device
from digitslite.engine.train import TrainConfig, TrainResult, train
from digitslite.errors import UserError
from digitslite.fileio import write_json_atomically
from digitslite.layout import RANKS_FILE

_CONFIG, _PROGRESS = "config.json", "progress.jsonl"


def _result_file(run_dir: Path, local_rank: int) -> Path:
    return run_dir / f"result-{local_rank}.json"


def _refusal_file(run_dir: Path, local_rank: int) -> Path:
    """Where a rank leaves the message of the UserError it ended with (it refused its input)."""
    return run_dir / f"refusal-{local_rank}.json"


def _encode_config(config: TrainConfig, job_dir: Path) -> dict[str, Any]:
    """The config as JSON: Caffe messages as base64 of their binary form, paths as text."""
    document: dict[str, Any] = {"job_dir": str(job_dir)}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, Message):
            value = {type(value).__name__: base64.b64encode(value.SerializeToString()).decode("ascii")}
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, list | tuple):
            value = [str(item) for item in value]
        document[field.name] = value
    return document


def _decode_config(document: dict[str, Any]) -> tuple[TrainConfig, Path]:
    values = dict(document)
    job_dir = Path(values.pop("job_dir"))
    for name, value in values.items():
        if isinstance(value, dict):
            ((kind, data),) = value.items()
            values[name] = getattr(caffe_pb2, kind).FromString(base64.b64decode(data))
    if values["solver_dir"] is not None:
        values["solver_dir"] = Path(values["solver_dir"])
    return TrainConfig(**values), job_dir


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
                         progress: Callable[[dict[str, Any]], None] | None) -> TrainResult:
    """Start this node's ranks, wait for them, and return what rank 0 (or this node's first) reports."""
    gpus = _gpu_ids(config)
    ranks_per_node = len(gpus) or config.processes_per_node
    rendezvous = _rendezvous(config, ranks_per_node)
    status: dict[str, Any] = {"nnodes": rendezvous.nnodes, "node_rank": rendezvous.node_rank,
                              "world_size": rendezvous.world_size,
                              "master": f"{rendezvous.master_addr}:{rendezvous.master_port}"}
    with tempfile.TemporaryDirectory(prefix="digitslite-ranks-") as folder:
        run_dir = Path(folder)
        (run_dir / _CONFIG).write_text(json.dumps(_encode_config(config, job_dir)))
        relay = _ProgressRelay(run_dir / _PROGRESS, progress)
        command = [sys.executable, "-m", "digitslite.engine.rank_training", str(run_dir)]
        with LocalRanks(command, rendezvous, _rank_environments(gpus, ranks_per_node)) as ranks:
            status["ranks"] = [{"rank": rendezvous.environment(local).rank, "local_rank": local, "pid": pid,
                                "gpu": gpus[local] if gpus else None} for local, pid in enumerate(ranks.pids)]
            _write_status(job_dir, status, "running")
            try:
                finished = ranks.wait(should_stop, relay)
            except RanksInterrupted as exc:
                relay()
                refusal = _refusal(run_dir, exc.local_rank)
                if refusal is not None:
                    _write_status(job_dir, status, "failed", refusal)
                    raise UserError(refusal) from None
                rank = rendezvous.environment(exc.local_rank).rank
                reason = (f"rank {rank} (pid {exc.pid}) {describe_exit(exc.returncode)}, so every rank of "
                          "this node was stopped; resume to continue from the latest snapshot")
                _write_status(job_dir, status, "interrupted", reason)
                raise RanksInterrupted(reason, exc.local_rank, exc.pid, exc.returncode) from None
        relay()
        if not finished:
            _write_status(job_dir, status, "stopped", "stopped while the ranks were starting, before any "
                                                      "iteration: there was nothing new to snapshot")
            return TrainResult(read_snapshot(config.resume).iteration if config.resume else 0, True)
        result = json.loads(_result_file(run_dir, 0).read_text())
    _write_status(job_dir, status, "stopped" if result["stopped"] else "done")
    return TrainResult(result["iterations"], result["stopped"], [Path(path) for path in result["snapshots"]],
                       result["loss"], Path(result["metrics"]) if result["metrics"] else None)


def _write_status(job_dir: Path, status: dict[str, Any], state: str, reason: str | None = None) -> None:
    write_json_atomically(job_dir / RANKS_FILE, {**status, "status": state, "reason": reason}, durable=False)


def _refusal(run_dir: Path, local_rank: int) -> str | None:
    """The UserError message the rank ended with, if it refused its input (not a crash or a kill)."""
    path = _refusal_file(run_dir, local_rank)
    return json.loads(path.read_text())["message"] if path.is_file() else None


# ----------------------------------------------------------------------------------------------
# in a rank


def _rank_main(run_dir: Path) -> int:
    die_with_parent()
    config, job_dir = _decode_config(json.loads((run_dir / _CONFIG).read_text()))
    config = dataclasses.replace(config, ranks=1, gpus=(), nnodes=1, node_rank=0, master=None)
    local_rank = int(os.environ["LOCAL_RANK"])
    stop_requested: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop_requested.append(signum))
    progress = None
    if os.environ["RANK"] == "0":
        records = (run_dir / _PROGRESS).open("a", encoding="utf-8")

        def progress(record: dict[str, Any]) -> None:
            records.write(json.dumps(record) + "\n")
            records.flush()
    try:
        result = train(config, job_dir, should_stop=lambda: bool(stop_requested), progress=progress)
    except UserError as exc:
        write_json_atomically(_refusal_file(run_dir, local_rank), {"message": str(exc)})
        print(f"rank {os.environ['RANK']}: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except Exception:
        traceback.print_exc()
        return 1
    write_json_atomically(_result_file(run_dir, local_rank), {
        "iterations": result.iterations, "stopped": result.stopped, "loss": result.loss,
        "snapshots": [str(path) for path in result.snapshots],
        "metrics": str(result.metrics) if result.metrics else None})
    return 0


if __name__ == "__main__":
    sys.exit(_rank_main(Path(sys.argv[1])))
