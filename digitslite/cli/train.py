"""`digitslite train`: train a Caffe network on a dataset folder, the worker's path without a server.

With --ranks, --gpus or --nnodes it starts the ranks of this node and joins the others (see
docs/SCALING.md); started by torchrun or Slurm (RANK and WORLD_SIZE set) it is one rank.
"""
import signal
import sys
from pathlib import Path

import click

from digitslite.caffe import caffe_pb2
from digitslite.caffe.deploy import bind_data_sources, dataset_deploy_net
from digitslite.caffe.prototxt import parse_solver, read_net, write_net, write_solver
from digitslite.cli._output import emit_json
from digitslite.engine.launch import EXIT_INTERRUPTED, RankEnvironment, RanksInterrupted
from digitslite.engine.lr_policy import POLICIES
from digitslite.engine.solver import RULES
from digitslite.engine.train import TrainConfig, TrainResult, train
from digitslite.errors import UserError
from digitslite.fileio import read_json
from digitslite.networks import load_network, load_solver

NET_COPY, SOLVER_COPY, DEPLOY_COPY = "train_val.prototxt", "solver.prototxt", "deploy.prototxt"
# CLI option -> SolverParameter field, applied over --solver (or over the defaults without one).
SOLVER_OPTIONS = {
    "base_lr": "base_lr", "lr_policy": "lr_policy", "gamma": "gamma", "power": "power",
    "stepsize": "stepsize", "momentum": "momentum", "weight_decay": "weight_decay", "solver_type": "type",
    "max_iter": "max_iter", "iter_size": "iter_size", "display": "display", "test_interval": "test_interval",
    "snapshot": "snapshot", "seed": "random_seed", "average_loss": "average_loss",
    "clip_gradients": "clip_gradients",
}
DEFAULT_SOLVER = {"base_lr": 0.01, "lr_policy": "fixed", "momentum": 0.9, "weight_decay": 0.0005,
                  "max_iter": 1000, "display": 20}


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
    if solver_file:
        solver = _read_solver(solver_file)
    else:
        solver = standard or caffe_pb2.SolverParameter(**DEFAULT_SOLVER)
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
    return solver


class _StandardNetwork:
    """A network of network_defs/ for a dataset's class count, reading its LMDBs, with its solver and
    the deploy net that `digitslite infer` runs on the dataset's images."""

    def __init__(self, name: str, dataset: str | None) -> None:
        if dataset is None:
            raise UserError("--network needs --dataset: the class count comes from the dataset's dataset.json")
        info_file = Path(dataset) / "dataset.json"
        try:
            info = read_json(info_file)
            classes = info["classes"]
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"{info_file}: cannot read the class list ({exc}); give a folder made by "
                            "`digitslite dataset create`") from None
        net = load_network(name, len(classes))
        # Absolute: the bound sources must not be resolved again against the dataset folder.
        self.net = bind_data_sources(net, Path(dataset).resolve())
        self.solver = load_solver(name)
        self.deploy = dataset_deploy_net(net, info)


def _net(net_file: str | None, batch_size: int | None,
         standard: caffe_pb2.NetParameter | None = None) -> caffe_pb2.NetParameter | None:
    """The net to train (None: the solver names its nets), with --batch-size written into Data layers."""
    if net_file is None and standard is None:
        if batch_size is not None:
            raise UserError("--batch-size rewrites the network's Data layers: give the network with --net "
                            "or --network")
        return None
    net = standard if standard is not None else read_net(net_file)
    if batch_size is not None:
        for layer in net.layer:
            if layer.type == "Data":
                layer.data_param.batch_size = batch_size
    return net


def _progress(record: dict) -> None:
    shown = ", ".join(f"{key} {value:.4g}" for key, value in record.items()
                      if key not in ("iteration", "phase") and isinstance(value, float))
    click.echo(f"[{record['phase']}] iteration {record['iteration']}: {shown}", err=True)


def _run(config: TrainConfig, job_dir: Path) -> TrainResult:
    """Train with SIGTERM (and Ctrl-C) meaning: snapshot at the end of this iteration and stop."""
    stop_requested = []

    def request_stop(signum, frame) -> None:
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
@click.option("--solver-type", type=click.Choice(list(RULES)), help="Update rule.")
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
@click.option("--amp", type=click.Choice(["bf16", "fp16"]), help="Mixed-precision forward pass.")
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
@click.option("-o", "--output", "job_dir", required=True, type=click.Path(file_okay=False),
              help="Job folder for metrics.jsonl and snapshots.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(dataset, network, net_file, solver_file, stepvalue, test_iter, batch_size, stages, weights,
            resume, use_gpu, amp, channels_last, use_compile, cudnn_benchmark, workers, ranks, gpus, nnodes,
            node_rank, master, sync_batchnorm, job_dir, as_json, **solver_options) -> None:
    """Train a network with Caffe's solver semantics, writing metrics and snapshots into a job folder.

    With --resume and neither --net nor --solver, the copies saved in the job folder are used.
    SIGTERM or Ctrl-C snapshots and stops; --resume continues exactly where it stopped, with any
    number of ranks. If a rank dies, every rank is stopped and the command exits with code 75.
    """
    job = Path(job_dir)
    if resume and not net_file and not solver_file and (job / SOLVER_COPY).is_file():
        net_file, solver_file = str(job / NET_COPY), str(job / SOLVER_COPY)
    if network and net_file:
        raise click.UsageError("give --network or --net, not both")
    standard = _StandardNetwork(network, dataset) if network else None
    standard_net, standard_solver = (standard.net, standard.solver) if standard else (None, None)
    solver_dir = Path(solver_file).parent if solver_file else None
    solver = _solver(solver_file, solver_options, stepvalue, test_iter, standard_solver)
    net = _net(net_file, batch_size, standard_net)
    if net is None and not (solver.net or solver.HasField("net_param") or solver.train_net
                            or solver.HasField("train_net_param")):
        raise UserError("no network to train: give --network or --net (or a --solver that names its net)")
    job.mkdir(parents=True, exist_ok=True)
    if net is not None:
        for other in ("train_net", "train_net_param", "net_param"):
            solver.ClearField(other)
        solver.net = NET_COPY
    env = RankEnvironment.from_environ()
    if env is None or env.rank == 0:    # under torchrun every rank runs this command
        if net is not None:
            write_net(net, job / NET_COPY)
        if standard is not None:
            write_net(standard.deploy, job / DEPLOY_COPY)
        write_solver(solver, job / SOLVER_COPY)
    config = TrainConfig(
        solver=solver, net=net, stages=stages, solver_dir=solver_dir if net is None else job,
        dataset_root=Path(dataset) if dataset else None,
        device=None if use_gpu is None else ("cuda" if use_gpu else "cpu"),
        weights=[w for given in weights for w in given.split(",") if w], resume=resume, amp=amp,
        channels_last=channels_last, compile=use_compile, cudnn_benchmark=cudnn_benchmark,
        data_workers=workers, ranks=ranks, gpus=[gpu for gpu in (gpus or "").split(",") if gpu],
        nnodes=nnodes, node_rank=node_rank, master=master, sync_batchnorm=sync_batchnorm,
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
