"""A model job's data- and pipeline-parallel fields (docs/SCALING.md), as `digitslite train` takes them.

`ranks`: processes on this node; for a GPU job, one per reserved GPU, and on the CPU (gloo) as many
as asked, up to the core count. `nnodes`, `node_rank` and `master`: this server's job is node
`node_rank` of `nnodes` meeting at node 0's ADDR:PORT; the other nodes run the same training (by
`digitslite train` or another server's job). `sync_batchnorm`: BatchNorm over all ranks' batches.

`pipeline_stages`: the net cut into that many stages, one GPU or CPU slot each, in `ranks`
data-parallel replicas (a GPU job: its GPU count is stages x replicas); `micro_batches` per
update, `pipeline_cuts` (blob names), `pipeline_balance` and `pipeline_schedule` as their CLI options.
`recompute`: re-materialization cuts (auto, N layers, or blob names).
"""
import os
from typing import Any

from digitslite.engine.launch import parse_master
from digitslite.errors import UserError
from digitslite.server.errors import ApiError
from digitslite.server.schemas.requests import ModelRequest


def scale_out_request(body: ModelRequest, gpus: int | list[str]) -> dict[str, Any]:
    """The checked fields, as the model runner passes them to TrainConfig."""
    gpu_count = len(gpus) if isinstance(gpus, list) else gpus
    cores = os.cpu_count() or 1
    stages = body.pipeline_stages or 1
    if stages > 1:
        return _pipeline_request(body, stages, gpu_count, cores)
    ranks = body.ranks or gpu_count or 1
    if gpu_count and ranks != gpu_count:
        raise ApiError(422, f"ranks: a GPU job trains one rank per GPU; leave ranks out or make it "
                            f"{gpu_count}", "ranks")
    if not gpu_count and ranks > cores:
        raise ApiError(422, f"ranks must be at most {cores} (this machine's cores), got {ranks}", "ranks")
    nnodes = body.nnodes or 1
    node_rank = body.node_rank or 0
    if node_rank > nnodes - 1:
        raise ApiError(422, f"node_rank must be at most {nnodes - 1}, got {node_rank}", "node_rank")
    master = body.master
    if nnodes > 1 and master is None:
        raise ApiError(422, "master: with several nodes, give node 0's address and a free port on it "
                            "as ADDR:PORT, e.g. 10.0.0.1:29500", "master")
    if nnodes == 1 and master is not None:
        raise ApiError(422, "master: one node needs no meeting point; leave master out or set nnodes",
                       "master")
    if master is not None:
        try:
            parse_master(master)
        except UserError as exc:
            raise ApiError(422, f"master: {master!r} is not ADDR:PORT; give node 0's address and a free "
                                "port on it, e.g. 10.0.0.1:29500", "master") from exc
    return {"ranks": ranks, "nnodes": nnodes, "node_rank": node_rank, "master": master,
            "sync_batchnorm": body.sync_batchnorm, "recompute": body.recompute}


def _pipeline_request(body: ModelRequest, stages: int, gpu_count: int, cores: int) -> dict[str, Any]:
    """A pipelined job: `ranks` replicas of `stages` processes, one GPU or CPU slot each."""
    if gpu_count:
        if gpu_count % stages:
            raise ApiError(422, f"pipeline_stages: a pipelined GPU job runs one process per GPU, {stages} "
                                f"per replica; ask for a multiple of {stages} GPUs (got {gpu_count})",
                           "pipeline_stages")
        replicas = gpu_count // stages
        if body.ranks not in (None, replicas):
            raise ApiError(422, f"ranks: {gpu_count} GPUs make {replicas} replicas of the {stages}-stage "
                                f"pipeline; leave ranks out or make it {replicas}", "ranks")
    else:
        replicas = body.ranks or 1
        if stages * replicas > cores:
            raise ApiError(422, f"pipeline_stages x ranks must be at most {cores} (this machine's cores), "
                                f"got {stages} x {replicas}", "pipeline_stages")
    return {"pipeline_stages": stages, "ranks": 1 if gpu_count else replicas,
            "micro_batches": body.micro_batches or 1, "pipeline_cuts": body.cuts(),
            "pipeline_schedule": body.pipeline_schedule, "pipeline_balance": body.pipeline_balance,
            "recompute": body.recompute}


def cpu_slots(scale_out: dict[str, Any]) -> int:
    """CPU slots a job without GPUs takes: one per pipeline stage of each replica (1 otherwise)."""
    return scale_out["pipeline_stages"] * scale_out["ranks"] if "pipeline_stages" in scale_out else 1
