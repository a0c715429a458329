"""`digitslite train`: train a Caffe network on a dataset folder, the worker's path without a server.

With --ranks, --gpus or --nnodes it starts the ranks of this node and joins the others, with
--pipeline-stages one process per stage of each of the --ranks replicas (see docs/SCALING.md);
started by torchrun or Slurm (RANK and WORLD_SIZE set) it is one rank.
"""
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from digitslite.caffe import caffe_pb2
from digitslite.caffe.deploy import bind_data_sources, dataset_deploy_net, set_batch_size
from digitslite.caffe.digitsnet import complete_digits_net, supplied_inputs, unset_class_outputs
from digitslite.caffe.partition import BALANCES
from digitslite.caffe.prototxt import parse_net, parse_solver, read_net, write_net, write_solver
from digitslite.caffe.template import (
    DEFAULT_IGNORE_LABEL,
    IGNORE_LABEL_FIELD,
    NUM_CLASSES_FIELD,
    fill_template,
)
from digitslite.cli._dataset import DatasetJson
from digitslite.cli._output import emit_json
from digitslite.engine.choices import AMP_MODES, DEFAULT_SOLVER, PIPELINE_SCHEDULES, SOLVER_TYPES
from digitslite.engine.logline import log_line
from digitslite.engine.lr_policy import POLICIES
from digitslite.errors import UserError
from digitslite.layout import TRAIN_VAL_FILE, JobFiles
from digitslite.networks import load_network, load_solver

if TYPE_CHECKING:  # torch loads with the engine: only when a command runs, never for --help
    from digitslite.engine.train import TrainConfig, TrainResult

# CLI option -> SolverParameter field, applied over --solver (or over the defaults without one).
SOLVER_OPTIONS = {
    "base_lr": "base_lr", "lr_policy": "lr_policy", "gamma": "gamma", "power": "power",
    "stepsize": "stepsize", "momentum": "momentum", "weight_decay": "weight_decay", "solver_type": "type",
    "max_iter": "max_iter", "iter_size": "iter_size", "display": "display", "test_interval": "test_interval",
    "snapshot": "snapshot", "seed": "random_seed", "average_loss": "average_loss",
    "clip_gradients": "clip_gradients",
}
CLI_SOLVER = {**DEFAULT_SOLVER, "max_iter": 1000}  # without --solver or --network


def _read_solver(path: str) -> caffe_pb2.SolverParameter:
    """The solver file without Caffe's path-derived snapshot_prefix default: digitslite snapshots go
    into the job folder (a relative snapshot_prefix is taken relative to it)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the solver file ({exc}); give a solver .prototxt") from None
    return parse_solver(text, path)


def _solver(solver_file: str | None, options: dict, stepvalue: tuple[int, ...], test_iter: int | None,
            standard: caffe_pb2.SolverParameter | None = None) -> caffe_pb2.SolverParameter:
    """The solver file, else the standard network's solver, else defaults; then the CLI's overrides."""
    from digitslite.engine.solver import check_solver  # torch: only when a command runs
    solver = _read_solver(solver_file) if solver_file else standard or caffe_pb2.SolverParameter(**CLI_SOLVER)
    for option, name in SOLVER_OPTIONS.items():
        if options.get(option) is not None:
            setattr(solver, name, options[option])
    if stepvalue:
        solver.ClearField("stepvalue")
        solver.stepvalue.extend(stepvalue)
    if test_iter is not None:
        solver.ClearField("test_iter")
        solver.test_iter.append(test_iter)
        if not solver.test_interval:
            raise UserError("--test-iter needs --test-interval (how many iterations between tests)")
    check_solver(solver, solver_file or "the solver", _field_names(options))
    return solver


def _field_names(options: dict) -> Callable[[str], str]:
    """A solver field as the user set it: the flag when an option gave it, else the field's name."""
    given = {name: option for option, name in SOLVER_OPTIONS.items() if options.get(option) is not None}
    return lambda field: f"--{given[field].replace('_', '-')}" if field in given else field


def _standard_network(name: str, dataset: DatasetJson | None) -> tuple[caffe_pb2.NetParameter,
                                                                        caffe_pb2.SolverParameter]:
    """A network of network_defs/ for the dataset's class count and ignore value, reading its LMDBs,
    and its solver."""
    if dataset is None:
        raise UserError("--network needs --dataset: the class count comes from the dataset's dataset.json")
    net = bind_data_sources(load_network(name, *dataset.labels()), dataset.folder)
    return net, load_solver(name)


def _read_net(net_file: str, dataset: DatasetJson | None) -> caffe_pb2.NetParameter:
    """The --net file, its {{num_classes}} and {{ignore_label}} (if any) filled from the dataset."""
    try:
        text = Path(net_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return read_net(net_file)   # a binary net, or its own error for an unreadable file
    if NUM_CLASSES_FIELD not in text and IGNORE_LABEL_FIELD not in text:
        return read_net(net_file)
    classes, ignore = dataset.labels() if dataset is not None else (None, DEFAULT_IGNORE_LABEL)
    filled = fill_template(text, classes, net_file, "give --dataset: its class count fills it",
                           ignore_label=ignore)
    return parse_net(filled, net_file)


def _net(net_file: str | None, batch_size: int | None, dataset: DatasetJson | None,
         standard: caffe_pb2.NetParameter | None = None) -> caffe_pb2.NetParameter | None:
    """The net to train (None: the solver names its nets), completed as DIGITS completes its networks
    (data layers it supplies, unset class outputs), with --batch-size written into Data layers."""
    if net_file is None and standard is None:
        if batch_size is not None:
            raise UserError("--batch-size rewrites the network's Data layers: give the network with --net "
                            "or --network")
        return None
    net = standard if standard is not None else _read_net(net_file, dataset)
    if standard is None and (supplied_inputs(net) or unset_class_outputs(net)):
        if dataset is None:
            raise UserError(f"{net_file} is a DIGITS-style network (its data, label or class count come from "
                            "the dataset): give --dataset")
        net = complete_digits_net(net, dataset.labels()[0])
    if batch_size is not None:
        set_batch_size(net, batch_size)
    return net


def _progress(record: dict) -> None:
    click.echo(log_line(record), err=True)


def _run(config: "TrainConfig", job_dir: Path) -> "TrainResult":
    """Train with SIGTERM (and Ctrl-C) meaning: snapshot at the end of this iteration and stop."""
    from digitslite.engine.dispatch import train

    stop_requested = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.append(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return train(config, job_dir, should_stop=lambda: bool(stop_requested), progress=_progress)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.command()
@click.option("--dataset", type=click.Path(file_okay=False), help="Dataset folder (train_db/, val_db/).")
@click.option("--network", help="A standard network of network_defs/ (e.g. fcn_tiny), sized for --dataset; "
              "its solver is the default.")
@click.option("--net", "net_file", type=click.Path(dir_okay=False),
              help="Network prototxt (train/val all-in-one, filtered by phase and stage like DIGITS).")
@click.option("--solver", "solver_file", type=click.Path(dir_okay=False), help="Solver prototxt.")
@click.option("--base-lr", type=float, help="Base learning rate.")
@click.option("--lr-policy", type=click.Choice(POLICIES), help="Learning-rate policy.")
@click.option("--gamma", type=float, help="Gamma of the step/exp/inv/multistep/sigmoid policies.")
@click.option("--power", type=float, help="Power of the inv/poly policies.")
@click.option("--stepsize", type=int, help="Step size of the step/sigmoid policies.")
@click.option("--stepvalue", type=int, multiple=True, help="Iteration of a multistep drop (repeatable).")
@click.option("--momentum", type=float, help="Momentum (Adam's beta1, AdaDelta's decay).")
@click.option("--weight-decay", type=float, help="Weight decay.")
@click.option("--solver-type", type=click.Choice(SOLVER_TYPES), help="Update rule.")
@click.option("--max-iter", type=int, help="Number of updates to train for.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Batch size of every Data layer.")
@click.option("--iter-size", type=click.IntRange(min=1), help="Batches accumulated per update.")
@click.option("--display", type=int, help="Log train outputs every N iterations.")
@click.option("--test-interval", type=int, help="Test every N iterations.")
@click.option("--test-iter", type=int, help="Batches per test pass.")
@click.option("--snapshot", type=int, help="Snapshot every N iterations (0: only at the end).")
@click.option("--average-loss", type=click.IntRange(min=1), help="Iterations the displayed loss averages.")
@click.option("--clip-gradients", type=float, help="Clip the gradient L2 norm to this value.")
@click.option("--seed", type=int, help="Random seed (same seed, same run on the CPU).")
@click.option("--stage", "stages", multiple=True, help="Extra NetState stage for both nets (repeatable).")
@click.option("--weights", multiple=True, help="Initial weights .caffemodel, copied by layer name "
              "(repeatable or comma-separated; later files overwrite).")
@click.option("--resume", type=click.Path(dir_okay=False), help="Continue from this .solverstate.")
@click.option("--gpu/--cpu", "use_gpu", default=None,
              help="Train on the GPU or the CPU (default: the GPU if there is one).")
@click.option("--amp", type=click.Choice(AMP_MODES), help="Mixed-precision forward pass.")
@click.option("--channels-last", is_flag=True, help="Use the channels_last memory format.")
@click.option("--compile", "use_compile", is_flag=True, help="Compile the train net with torch.compile.")
@click.option("--cudnn-benchmark", is_flag=True, help="Let cuDNN pick algorithms (fixed input sizes).")
@click.option("--workers", type=click.IntRange(min=0), help="Data-loading processes (default 4 on GPU).")
@click.option("--ranks", type=click.IntRange(min=1), default=1,
              help="Data-parallel processes on this node, one per GPU on CUDA; batch sizes are per rank.")
@click.option("--gpus", help="GPU ids for the ranks of this node, comma-separated (as CUDA_VISIBLE_DEVICES "
              "takes them), one rank each.")
@click.option("--nnodes", type=click.IntRange(min=1), default=1, help="Nodes taking part (each runs this "
              "command with its --node-rank).")
@click.option("--node-rank", type=click.IntRange(min=0), default=0, help="This node's number, 0 to nnodes-1.")
@click.option("--master", metavar="ADDR:PORT", help="Where the ranks meet: node 0's address and a free port.")
@click.option("--sync-batchnorm", is_flag=True, help="BatchNorm statistics over the batches of all ranks.")
@click.option("--recompute", metavar="auto|N|BLOBS", is_flag=False, flag_value="auto",
              help="Recompute activations in the backward pass instead of keeping them: cut the net every "
              "N layers, after the named blobs (comma-separated, e.g. pool2,pool4), or auto (every "
              "sqrt(layers)); alone it means auto. Same numbers, less memory, about one more forward.")
@click.option("--pipeline-stages", type=click.IntRange(min=1), default=1,
              help="Cut the net into this many stages, one process (GPU) each, in --ranks replicas "
              "(--gpus: a multiple of the stages; docs/SCALING.md).")
@click.option("--micro-batches", type=click.IntRange(min=1), default=1,
              help="Batches per update flowing through the pipeline (as iter_size).")
@click.option("--pipeline-cuts", metavar="BLOB,BLOB", help="Cut after these blobs instead of balancing "
              "(see digitslite net partition).")
@click.option("--pipeline-balance", type=click.Choice(BALANCES), default=BALANCES[0], show_default=True,
              help="What the balanced cut evens out over the stages: forward FLOPs (time), activation "
              "bytes, or parameters (the weights each stage holds).")
@click.option("--pipeline-schedule", type=click.Choice(PIPELINE_SCHEDULES), default=PIPELINE_SCHEDULES[0],
              show_default=True, help="Order of the micro-batches' forward and backward passes; auto: "
              "1f1b where --micro-batches is at least --pipeline-stages, gpipe below.")
@click.option("-o", "--output", "job_dir", required=True, type=click.Path(file_okay=False),
              help="Job folder for metrics.jsonl and snapshots.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(dataset: str | None, network: str | None, net_file: str | None, solver_file: str | None,
            stepvalue: tuple[int, ...], test_iter: int | None, batch_size: int | None,
            stages: tuple[str, ...], weights: tuple[str, ...], resume: str | None, use_gpu: bool | None,
            amp: str | None, channels_last: bool, use_compile: bool, cudnn_benchmark: bool,
            workers: int | None, ranks: int, gpus: str | None, nnodes: int, node_rank: int,
            master: str | None, sync_batchnorm: bool, recompute: str | None, pipeline_stages: int,
            micro_batches: int, pipeline_cuts: str | None, pipeline_balance: str, pipeline_schedule: str,
            job_dir: str, as_json: bool, **solver_options: Any) -> None:
    """Train a network with Caffe's solver semantics, writing metrics and snapshots into a job folder.

    With --resume and neither --net nor --solver, the copies saved in the job folder are used.
    SIGTERM or Ctrl-C snapshots and stops; --resume continues exactly where it stopped, with any
    number of ranks. If a rank dies, every rank is stopped and the command exits with code 75.
    """
    from digitslite.engine.launch import EXIT_INTERRUPTED, RankEnvironment, RanksInterrupted
    from digitslite.engine.train import TrainConfig

    job = Path(job_dir)
    files = JobFiles(job)
    dataset_dir = Path(dataset).absolute() if dataset else None  # resolved once, from where the command runs
    dataset_json = DatasetJson.read(dataset_dir) if dataset_dir else None
    if resume and not net_file and not solver_file and files.solver_file.is_file():
        net_file, solver_file = str(files.train_val_file), str(files.solver_file)
    if network and net_file:
        raise click.UsageError("give --network or --net, not both")
    standard_net, standard_solver = _standard_network(network, dataset_json) if network else (None, None)
    solver_dir = Path(solver_file).parent if solver_file else None
    solver = _solver(solver_file, solver_options, stepvalue, test_iter, standard_solver)
    net = _net(net_file, batch_size, dataset_json, standard_net)
    if net is None and not (solver.net or solver.HasField("net_param") or solver.train_net
                            or solver.HasField("train_net_param")):
        raise UserError("no network to train: give --network or --net (or a --solver that names its net)")
    job.mkdir(parents=True, exist_ok=True)
    if net is not None:
        for other in ("train_net", "train_net_param", "net_param"):
            solver.ClearField(other)
        solver.net = TRAIN_VAL_FILE
    env = RankEnvironment.from_environ()
    if env is None or env.rank == 0:    # under torchrun every rank runs this command
        if net is not None:
            write_net(net, files.train_val_file)
        if network:   # what `digitslite infer` runs on the dataset's images
            write_net(dataset_deploy_net(net, dataset_json.info), files.deploy_file)
        write_solver(solver, files.solver_file)
    config = TrainConfig(
        solver=solver, net=net, stages=stages, solver_dir=solver_dir if net is None else job,
        dataset_root=dataset_dir,
        device=None if use_gpu is None else ("cuda" if use_gpu else "cpu"),
        weights=[w for given in weights for w in given.split(",") if w], resume=resume, amp=amp,
        channels_last=channels_last, compile=use_compile, cudnn_benchmark=cudnn_benchmark,
        data_workers=workers, ranks=ranks, gpus=[gpu for gpu in (gpus or "").split(",") if gpu],
        nnodes=nnodes, node_rank=node_rank, master=master, sync_batchnorm=sync_batchnorm,
        recompute=recompute, pipeline_stages=pipeline_stages, micro_batches=micro_batches,
        pipeline_cuts=[cut.strip() for cut in (pipeline_cuts or "").split(",") if cut.strip()],
        pipeline_schedule=pipeline_schedule, pipeline_balance=pipeline_balance,
        dataset_info=None if dataset_json is None else dataset_json.info,
    )
    try:
        result = _run(config, job)
    except RanksInterrupted as exc:
        click.echo(f"interrupted: {exc}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    summary = {"iterations": result.iterations, "stopped": result.stopped, "loss": result.loss,
               "snapshots": [str(path) for path in result.snapshots],
               "metrics": str(result.metrics) if result.metrics else None}    # None: not rank 0's node
    if as_json:
        emit_json(summary)
    else:
        state = "stopped at" if result.stopped else "finished after"
        click.echo(f"{state} iteration {result.iterations}; loss {result.loss}; "
                   f"last snapshot {summary['snapshots'][-1] if result.snapshots else 'none'}")
