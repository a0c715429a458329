"""A model job's data- and pipeline-parallel fields (docs/SCALING.md), as `digitslite train` takes them.

`ranks`: processes on this node; for a GPU job, one per reserved GPU, and on the CPU (gloo) as many
as asked, up to the core count. `nnodes`, `node_rank` and `master`: this server's job is node
`node_rank` of `nnodes` meeting at node 0's ADDR:PORT; the other nodes run the same training (by
`digitslite train` or another server's job). `sync_batchnorm`: BatchNorm over all ranks' batches.

`pipeline_stages`: the net cut into that many stages, one GPU each (the job's GPU count) or one CPU
slot each; `micro_batches` per update, `pipeline_cuts` (blob names) and `pipeline_schedule` (gpipe,
1f1b) as their CLI options. `recompute`: re-materialization cuts (auto, N layers, or blob names).
"""
import os
from typing import Any

from digitslite.engine.launch import parse_master
from digitslite.errors import UserError
from digitslite.server.errors import ApiError
from digitslite.server.fields import Fields

SCALE_OUT_FIELDS = ("ranks", "nnodes", "node_rank", "master", "sync_batchnorm", "recompute",
                    "pipeline_stages", "micro_batches", "pipeline_cuts", "pipeline_schedule")
PIPELINE_SCHEDULES = ("gpipe", "1f1b")


def scale_out_request(fields: Fields, gpus: int | list[str]) -> dict[str, Any]:
    """The checked fields, as the model runner passes them to TrainConfig."""
    gpu_count = len(gpus) if isinstance(gpus, list) else gpus
    cores = os.cpu_count() or 1
    pipeline = _pipeline_request(fields, gpu_count, cores)
    if pipeline["pipeline_stages"] > 1:
        if fields.has("ranks") or fields.has("nnodes") or fields.boolean("sync_batchnorm"):
            raise ApiError(422, "pipeline_stages: a pipelined job runs one process per stage on this server; "
                                "leave ranks, nnodes and sync_batchnorm out", "pipeline_stages")
        return {**pipeline, "recompute": _recompute(fields)}
    if gpu_count:
        ranks = fields.integer("ranks", gpu_count, minimum=1)
        if ranks != gpu_count:
            raise ApiError(422, f"ranks: a GPU job trains one rank per GPU; leave ranks out or make it "
                                f"{gpu_count}", "ranks")
    else:
        ranks = fields.integer("ranks", 1, minimum=1, maximum=cores)
    nnodes = fields.integer("nnodes", 1, minimum=1)
    node_rank = fields.integer("node_rank", 0, minimum=0, maximum=nnodes - 1)
    master = fields.text("master", max_length=300)
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
            "sync_batchnorm": fields.boolean("sync_batchnorm"), "recompute": _recompute(fields)}


def _recompute(fields: Fields) -> str | None:
    value = fields.text("recompute", max_length=2000)
    if value is not None and value.strip() in ("0", ""):
        raise ApiError(422, "recompute: give auto, a number of layers per segment (at least 1), or blob "
                            "names such as pool2,pool4", "recompute")
    return value


def _pipeline_request(fields: Fields, gpu_count: int, cores: int) -> dict[str, Any]:
    stages = fields.integer("pipeline_stages", 1, minimum=1, maximum=gpu_count or cores)
    if gpu_count and stages > 1 and stages != gpu_count:
        raise ApiError(422, f"pipeline_stages: a pipelined GPU job runs one stage per GPU; ask for {stages} "
                            f"GPUs or make pipeline_stages {gpu_count}", "pipeline_stages")
    micro_batches = fields.integer("micro_batches", 1, minimum=1)
    given = fields.text("pipeline_cuts", max_length=2000) or ""
    cuts = [cut.strip() for cut in given.split(",") if cut.strip()]
    if stages == 1 and (micro_batches > 1 or cuts):
        raise ApiError(422, "micro_batches and pipeline_cuts go with pipeline_stages above 1; on one process "
                            "use iter_size", "pipeline_stages")
    if cuts and len(cuts) != stages - 1:
        raise ApiError(422, f"pipeline_cuts: {len(cuts)} cuts make {len(cuts) + 1} stages, not {stages}; "
                            f"give {stages - 1} blob names", "pipeline_cuts")
    return {"pipeline_stages": stages, "micro_batches": micro_batches, "pipeline_cuts": cuts,
            "pipeline_schedule": fields.choice("pipeline_schedule", PIPELINE_SCHEDULES, "gpipe")}
