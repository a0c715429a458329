"""Model jobs: train a network on a dataset job's LMDBs with the engine, resumable from snapshots.

The first run writes the job's Caffe files (the all-in-one network with the class count filled
in, train_val bound to the dataset, deploy, solver) and a copy of the dataset's dataset.json; a
resumed run reads them back unchanged and continues from the newest complete snapshot, so an
interrupted training ends with the same weights as an uninterrupted one.
"""
import json
import math
import shutil
from pathlib import Path
from typing import Any

from digitslite.caffe import caffe_pb2
from digitslite.caffe.coordmap import fill_crop_offsets
from digitslite.caffe.deploy import bind_data_sources, dataset_deploy_net
from digitslite.caffe.digitsnet import complete_digits_net
from digitslite.caffe.prototxt import filter_net, parse_net, read_net, read_solver, write_net, write_solver
from digitslite.caffe.template import DEFAULT_IGNORE_LABEL, fill_template
from digitslite.engine.choices import DEFAULT_SOLVER
from digitslite.engine.logline import log_line
from digitslite.errors import UserError
from digitslite.jobs.folder import JobFolder
from digitslite.jobs.runners.context import JobStopped, RunContext
from digitslite.layout import (
    DATASET_INFO_FILE,
    NETWORK_FILE,
    SNAPSHOT_PREFIX,
)
from digitslite.networks import load_network, load_solver

# Solver fields a request may set, copied as they are into the SolverParameter.
SOLVER_SCALARS = ("type", "base_lr", "lr_policy", "gamma", "power", "stepsize", "momentum", "momentum2",
                  "delta", "rms_decay", "weight_decay", "iter_size", "display", "random_seed")


def latest_complete_snapshot(folder: JobFolder) -> Path | None:
    """The newest snapshot's .solverstate (written last by the engine, so its snapshot is whole)."""
    complete = [snap for snap in folder.snapshots() if snap.solverstate is not None]
    return complete[-1].solverstate if complete else None


def snapshot_weights(folder: JobFolder, iteration: int | None, what: str) -> Path:
    """A model job's snapshot weights: the given iteration, or the newest."""
    snapshots = folder.snapshots()
    if not snapshots:
        raise UserError(f"the {what} job {folder.id} has no snapshot yet")
    if iteration is None:
        return snapshots[-1].weights
    for snap in snapshots:
        if snap.iteration == iteration:
            return snap.weights
    known = ", ".join(str(snap.iteration) for snap in snapshots)
    raise UserError(f"the {what} job {folder.id} has no snapshot at iteration {iteration} (it has {known})")


def _weights_of(ctx: RunContext, ref: dict[str, Any], what: str) -> Path:
    """The weights a reference names: a model job's snapshot, or a pretrained job's weights."""
    other = ctx.other_job(ref["job"], what)
    if ref["kind"] == "pretrained":
        return other.pretrained_weights
    return snapshot_weights(other, ref.get("iteration"), what)


def _network(ctx: RunContext, info: dict[str, Any]) -> tuple[caffe_pb2.NetParameter,
                                                             caffe_pb2.SolverParameter | None, list[Path]]:
    """The all-in-one network (its template fields filled from the dataset's description), the solver
    to start from (if the source has one), initial weights."""
    source = ctx.params["network"]
    solver, weights = None, []
    num_classes, ignore_label = len(info["classes"]), info.get("ignore_label", DEFAULT_IGNORE_LABEL)
    if source["kind"] == "standard":
        net, solver = load_network(source["name"], num_classes, ignore_label), load_solver(source["name"])
    elif source["kind"] == "prototxt":
        text = fill_template(source["text"], num_classes, "network_prototxt", ignore_label=ignore_label)
        net = fill_crop_offsets(complete_digits_net(parse_net(text, source="network_prototxt"), num_classes))
    else:
        other = ctx.other_job(source["job"], "network")
        if not other.network_file.is_file():
            raise UserError(f"job {other.id} has no trainable network ({NETWORK_FILE}); give the network as "
                            "prototxt text and that job as the weights")
        net = read_net(other.network_file)
        if other.solver_file.is_file():
            solver = read_solver(other.solver_file)
        weights = [_weights_of(ctx, source, "network")]
    if ctx.params.get("weights"):
        weights = [_weights_of(ctx, ctx.params["weights"], "weights")]
    return net, solver, weights


def _train_batch_size(net: caffe_pb2.NetParameter, phase: str) -> int:
    filtered = filter_net(net, phase=phase, stages=["train" if phase == "train" else "val"])
    sizes = [layer.data_param.batch_size for layer in filtered.layer if layer.type == "Data"]
    return max(sizes[0] if sizes else 1, 1)


def build_solver(fields: dict[str, Any], base: caffe_pb2.SolverParameter | None, counts: dict[str, int],
                 train_batch: int, val_batch: int) -> caffe_pb2.SolverParameter:
    """The run's solver: the source's (or Caffe's defaults), with the request's fields over it and the
    epoch-based lengths turned into iterations from the dataset's sizes."""
    solver = caffe_pb2.SolverParameter()
    if base is not None:
        solver.CopyFrom(base)
    else:
        solver.MergeFrom(caffe_pb2.SolverParameter(**DEFAULT_SOLVER))
    for name in SOLVER_SCALARS:
        if fields.get(name) is not None:
            setattr(solver, name, fields[name])
    if fields.get("stepvalue"):
        del solver.stepvalue[:]
        solver.stepvalue.extend(fields["stepvalue"])
    per_epoch = max(1, math.ceil(counts.get("train", 0) / (train_batch * max(solver.iter_size, 1))))
    if fields.get("max_iter"):
        solver.max_iter = fields["max_iter"]
    elif fields.get("epochs") or not solver.max_iter:
        solver.max_iter = per_epoch * (fields.get("epochs") or 30)
    val_count = counts.get("val", 0)
    del solver.test_iter[:]
    if val_count:
        solver.test_iter.append(math.ceil(val_count / val_batch))
        solver.test_interval = fields.get("test_interval") or solver.test_interval or per_epoch
    else:
        solver.test_interval = 0
    solver.snapshot = fields.get("snapshot") or solver.snapshot or per_epoch
    solver.snapshot_prefix = SNAPSHOT_PREFIX
    for name in ("net", "train_net", "snapshot_format"):
        solver.ClearField(name)
    return solver


def _write_job_files(ctx: RunContext, dataset_dir: Path, info: dict[str, Any]) -> list[Path]:
    """First run: fix the network, solver and dataset description this job trains with."""
    net, base_solver, weights = _network(ctx, info)
    batch = ctx.params["solver"].get("batch_size")
    bound = bind_data_sources(net, dataset_dir, batch)
    solver = build_solver(ctx.params["solver"], base_solver, info["counts"],
                          _train_batch_size(bound, "train"), _train_batch_size(bound, "test"))
    write_net(net, ctx.folder.network_file)
    write_net(bound, ctx.folder.train_val_file)
    write_net(dataset_deploy_net(net, info), ctx.folder.deploy_file)
    write_solver(solver, ctx.folder.solver_file)
    shutil.copyfile(dataset_dir / DATASET_INFO_FILE, ctx.folder.dataset_info_file)
    return weights


def run(ctx: RunContext) -> None:
    from digitslite.engine.dispatch import train  # torch: only in the worker
    from digitslite.engine.train import TrainConfig

    dataset_dir = ctx.other_job(ctx.params["dataset"], "dataset").dataset.path
    info = json.loads((dataset_dir / DATASET_INFO_FILE).read_text())
    resume = latest_complete_snapshot(ctx.folder)
    if resume is None or not ctx.folder.solver_file.exists():
        resume = None
        weights = _write_job_files(ctx, dataset_dir, info)
    else:
        weights = []
        print(f"resuming from {resume.name}", flush=True)
    solver = read_solver(ctx.folder.solver_file)
    speed = ctx.params.get("speed", {})
    gpus = ctx.spec.gpu_count
    # Data-parallel (docs/SCALING.md): one rank per reserved GPU, or the CPU ranks asked for; jobs
    # from before these fields train one rank per GPU, or one process on the CPU.
    scale_out = ctx.params.get("scale_out") or {"ranks": max(gpus, 1)}
    config = TrainConfig(solver=solver, net=read_net(ctx.folder.train_val_file), solver_dir=ctx.job_dir,
                         dataset_info=info,
                         dataset_root=dataset_dir, device="cuda" if gpus else "cpu", weights=weights,
                         resume=resume, amp=speed.get("amp"), channels_last=bool(speed.get("channels_last")),
                         compile=bool(speed.get("compile")), **scale_out)

    def report(record: dict[str, Any]) -> None:
        print(log_line(record), flush=True)
        iteration = record["iteration"]
        ctx.report(iteration / solver.max_iter, f"iteration {iteration}/{solver.max_iter}")

    result = train(config, ctx.job_dir, should_stop=ctx.should_stop, progress=report)
    if result.stopped:
        raise JobStopped()
    print(f"trained {result.iterations} iterations; last loss {result.loss}", flush=True)
