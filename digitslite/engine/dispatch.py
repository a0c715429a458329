"""Where a training run executes: in this process, on rank processes this node starts, or as the
one rank of a run whose launcher (torchrun, Slurm, this node's) started this process.

The CLI and the worker train through `train` here. It sits above the training loop
(digitslite.engine.train), pipelined training (digitslite.engine.pipeline.training) and the rank
launcher (digitslite.engine.rank_training), so that none of them needs to know the others.
"""
from collections.abc import Callable
from pathlib import Path
from typing import Any

from digitslite.engine.distributed import Ranks, rank_device
from digitslite.engine.launch import RankEnvironment
from digitslite.engine.rank_training import train_on_local_ranks
from digitslite.engine.speed import resolve_device
from digitslite.engine.train import Feeds, TrainConfig, TrainResult, _Training
from digitslite.errors import UserError


def train(config: TrainConfig, job_dir: Path, *, feeds: Feeds | None = None,
          should_stop: Callable[[], bool] | None = None,
          progress: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train as Caffe's `caffe train` would, writing metrics and snapshots into `job_dir`.

    `feeds` maps "train" / "val" to re-iterable batches ({top name: tensor}) that replace the
    nets' data layers; without them Data layers read their LMDB datasets. `should_stop` is polled
    once per iteration (by a launcher of ranks: every WATCH_INTERVAL_S of
    digitslite.engine.local_ranks); when it returns True the run snapshots and returns (SIGTERM
    handling). `progress` receives every metrics record as it is written. With `config` asking for
    ranks, this process launches and watches them; started as a rank (RANK/WORLD_SIZE set), it is
    one of them.
    """
    job_dir = Path(job_dir)
    if config.pipeline_stages == 1 and (config.micro_batches > 1 or config.pipeline_cuts):
        raise UserError("--micro-batches and --pipeline-cuts go with --pipeline-stages K (K > 1); on one "
                        "process, accumulate batches with --iter-size")
    job_dir.mkdir(parents=True, exist_ok=True)
    if RankEnvironment.from_environ() is None and config.launches_ranks:
        if feeds is not None:
            raise UserError("batches given in memory (feeds) reach only this process; to train on several "
                            "ranks, read the data from an LMDB dataset (Data layers)")
        return train_on_local_ranks(config, job_dir, should_stop, progress, _train_here)
    return _train_here(config, job_dir, feeds=feeds, should_stop=should_stop, progress=progress)


def _train_here(config: TrainConfig, job_dir: Path, *, feeds: Feeds | None = None,
                should_stop: Callable[[], bool] | None = None,
                progress: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train in this process: alone, or as the rank that its environment names."""
    env = RankEnvironment.from_environ()
    if env is None:
        ranks = Ranks(device=resolve_device(config.device))
    else:
        _single_rank(config, env)
        ranks = Ranks.join(env, rank_device(config.device, env))
    session_type = _Training
    if config.pipeline_stages > 1:   # torch's pipelining takes seconds to import: only for a pipeline
        from digitslite.engine.pipeline.training import PipelinedTraining

        session_type = PipelinedTraining
    result = session_type(config, job_dir, feeds, progress, ranks).run(should_stop)
    # Only after success: a failed rank ends its process instead, since leaving the group politely could
    # wait on ranks that are stuck in a collective with it; its launcher takes them all down.
    ranks.close()
    return result


def _single_rank(config: TrainConfig, env: RankEnvironment) -> None:
    """A process started as a rank by a launcher takes no launch settings of its own."""
    if config.ranks > 1 or config.gpus or config.nnodes > 1 or config.master is not None or config.node_rank:
        raise UserError(f"this process is rank {env.rank} of {env.world_size}, started by a launcher that "
                        "set RANK and WORLD_SIZE (torchrun, Slurm); give the rank and node counts to that "
                        "launcher and leave out --ranks, --gpus, --nnodes, --node-rank and --master")
