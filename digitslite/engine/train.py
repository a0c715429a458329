"""The training loop: Caffe's Solver::Solve/Step (caffe-spec §4.2, §4.6, §4.8) on CaffeNets.

Run by digitslite.engine.dispatch, for `digitslite train` and the job worker. It writes
`metrics.jsonl` in the job folder, one flushed JSON line per display or test event, and snapshots
that a later run resumes bit for bit.

On several ranks (digitslite.engine.distributed) every rank runs this loop on its share of the data
(digitslite.engine.feeds), and only rank 0 writes: metrics reduced over the ranks, and snapshots.
A run on W ranks with batch B and iter_size k updates as one process with batch W·B and iter_size
k: the same samples, the same learning rate, the gradient averaged over the W·B samples.
"""
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from digitslite.caffe import caffe_pb2
from digitslite.caffe.prototxt import filter_net, read_net_located
from digitslite.caffe.shapes import input_tops, is_source
from digitslite.engine.batch_stream import BatchStream, Shard
from digitslite.engine.distributed import Ranks
from digitslite.engine.feeds import FeedStream, data_layer_stream
from digitslite.engine.lr_policy import learning_rate
from digitslite.engine.net import CaffeNet
from digitslite.engine.recompute import enable_recompute
from digitslite.engine.snapshot import Snapshot, read_snapshot, rng_state, set_rng_state, write_snapshot
from digitslite.engine.solver import SmoothedLoss, Solver, check_solver
from digitslite.engine.speed import (
    LossScaler,
    autocast,
    check_amp,
    configure_backends,
    to_device,
)
from digitslite.engine.sync_batchnorm import synchronise_batch_norm
from digitslite.engine.validation import Probe, Tally
from digitslite.errors import UserError
from digitslite.fileio import write_atomically
from digitslite.layout import METRICS_FILE, SNAPSHOT_PREFIX
from digitslite.tasks import task_of

LARGEST_LOGGED_BLOB = 1024     # output blobs with more values (e.g. a score map) are not logged
Feeds = Mapping[str, Iterable[Mapping[str, torch.Tensor]]]


@dataclass
class TrainConfig:
    """What to train and how. `net` is an all-in-one train/val net (filtered like DIGITS: TRAIN with
    stage "train", TEST with stage "val", plus `stages`); None takes the solver's net fields.
    Relative net paths in the solver resolve against `solver_dir`. `weights` (default: the solver's
    `weights`) are copied in by layer name; `resume` is a .solverstate to continue from.

    Several ranks (docs/SCALING.md): `ranks` processes on this node, one per GPU on CUDA (`gpus`
    names them; default the visible ones), on each of `nnodes` nodes meeting at `master`
    ("ADDR:PORT" of node 0). Batch sizes are per rank. Inputs (dataset, net, weights) must be at the
    same paths on every node; the job folder is written by rank 0 only. The defaults mean one
    process. Under torchrun or Slurm, which set RANK/WORLD_SIZE, the process is one rank and these
    fields stay at their defaults."""

    solver: caffe_pb2.SolverParameter
    net: str | Path | caffe_pb2.NetParameter | None = None
    stages: Sequence[str] = ()
    solver_dir: Path | None = None
    dataset_root: Path | None = None
    device: str | None = None
    weights: Sequence[str | Path] = ()
    resume: str | Path | None = None
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False
    cudnn_benchmark: bool = False
    data_workers: int | None = None
    ranks: int = 1
    gpus: Sequence[str] = ()
    nnodes: int = 1
    node_rank: int = 0
    master: str | None = None
    sync_batchnorm: bool = False
    recompute: str | None = None      # re-materialization cuts (digitslite.engine.recompute)
    # Pipeline parallelism (digitslite.engine.pipeline): the train net cut into `pipeline_stages`
    # stages, one process each, at `pipeline_cuts` (blob names) or balanced by `pipeline_balance`
    # (digitslite.caffe.partition.BALANCES); every update takes
    # `micro_batches` batches through them (choices.PIPELINE_SCHEDULES), as iter_size = micro_batches.
    pipeline_stages: int = 1
    micro_batches: int = 1
    pipeline_cuts: Sequence[str] = ()
    pipeline_schedule: str = "auto"
    dataset_info: dict[str, Any] | None = None   # the dataset's dataset.json: its task scores the test passes
    pipeline_balance: str = "flops"

    @property
    def launches_ranks(self) -> bool:
        """Whether this run starts rank processes rather than training in the calling process."""
        return self.ranks > 1 or bool(self.gpus) or self.nnodes > 1 or self.pipeline_stages > 1

    @property
    def processes_per_node(self) -> int:
        """The processes this node starts: one per data-parallel rank, times the pipeline stages (a
        pipeline's ranks are replicas of it)."""
        return self.ranks * self.pipeline_stages


@dataclass
class TrainResult:
    iterations: int
    stopped: bool                      # should_stop asked to stop before max_iter
    snapshots: list[Path] = field(default_factory=list)   # the .caffemodel files written
    loss: float | None = None          # the last smoothed train loss
    metrics: Path | None = None


@dataclass
class _NetSpec:
    """One net the solver builds: the definition, its phase and the state merged over it."""

    net: caffe_pb2.NetParameter
    phase: str
    stages: tuple[str, ...]
    state: caffe_pb2.NetState | None
    source_map: Any
    feed_key: str


# ----------------------------------------------------------------------------------------------
# which nets (caffe-spec §4.1)


def _load_net(source: str | Path | caffe_pb2.NetParameter, base: Path | None):
    if isinstance(source, caffe_pb2.NetParameter):
        return source, None
    path = Path(source)
    if not path.is_absolute() and base is not None and (base / path).exists():
        path = base / path
    return read_net_located(path)


def _net_specs(config: TrainConfig) -> tuple[_NetSpec, list[_NetSpec]]:
    """The train net and the test nets, chosen as Caffe's Solver::InitTrainNet/InitTestNets do."""
    solver, base, stages = config.solver, config.solver_dir, tuple(config.stages)
    generic = None
    if config.net is not None:
        generic = _load_net(config.net, base)
    elif solver.HasField("net_param"):
        generic = (solver.net_param, None)
    elif solver.net:
        generic = _load_net(solver.net, base)
    train_state = solver.train_state if solver.HasField("train_state") else None
    if config.net is None and solver.HasField("train_net_param"):
        train = _NetSpec(solver.train_net_param, "train", (), train_state, None, "train")
    elif config.net is None and solver.train_net:
        net, where = _load_net(solver.train_net, base)
        train = _NetSpec(net, "train", (), train_state, where, "train")
    elif generic is not None:
        train = _NetSpec(*generic[:1], "train", ("train", *stages), train_state, generic[1], "train")
    else:
        raise UserError("no network to train: give --net, or set net/train_net in the solver")
    explicit = [(net, None) for net in solver.test_net_param] + [_load_net(p, base) for p in solver.test_net]
    count = len(solver.test_iter)
    if count < len(explicit) or (generic is None and count != len(explicit)):
        raise UserError(f"solver: test_iter is given {count} times for {len(explicit)} test nets"
                        f"{' plus the train/val net' if generic else ''}; give one test_iter per test net")
    if solver.test_state and len(solver.test_state) != count:
        raise UserError(f"solver: test_state is given {len(solver.test_state)} times for {count} test nets; "
                        "give one per test net or none")
    tests = []
    for index in range(count):
        state = solver.test_state[index] if solver.test_state else None
        if index < len(explicit):
            net, where = explicit[index]
            tests.append(_NetSpec(net, "test", (), state, where, "val"))
        else:
            tests.append(_NetSpec(generic[0], "test", ("val", *stages), state, generic[1], "val"))
    if tests and solver.test_interval <= 0:
        raise UserError("solver: test_interval must be > 0 when there are test nets (test_iter is set); "
                        "set test_interval or remove test_iter")
    return train, tests


def _sources(spec: _NetSpec) -> tuple[list[caffe_pb2.LayerParameter], list[str]]:
    """The net's data-source layers and its input tops, after filtering."""
    filtered = filter_net(spec.net, spec.phase, 0, spec.stages, state=spec.state)
    return [layer for layer in filtered.layer if is_source(layer)], input_tops(filtered)


# ----------------------------------------------------------------------------------------------
# metrics


class MetricsLog:
    """metrics.jsonl: one JSON object per line, flushed at once (other processes tail it); each record
    also goes to `progress`, if given."""

    def __init__(self, path: Path, keep_before: int | None,
                 progress: Callable[[dict[str, Any]], None] | None = None) -> None:
        """`keep_before`: on resume, drop lines at or after that iteration (they are redone). The
        kept lines replace the file in one rename: a run killed meanwhile loses no history."""
        self.path, self.progress = path, progress
        kept = []
        if keep_before is not None and path.is_file():
            kept = [line for line in path.read_text().splitlines() if _iteration(line) < keep_before]
        write_atomically(path, "".join(line + "\n" for line in kept).encode())
        self.file = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        record = _json_safe(record)
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.progress is not None:
            self.progress(record)

    def close(self) -> None:
        self.file.close()


def _iteration(line: str) -> float:
    """The iteration of a metrics line; a line cut short by a killed run counts as not written."""
    try:
        return json.loads(line)["iteration"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def _blob_value(tensor: torch.Tensor) -> float | list | None:
    if tensor.numel() > LARGEST_LOGGED_BLOB:
        return None
    values = tensor.detach().double().cpu()
    return float(values.reshape(())) if values.numel() == 1 else values.reshape(-1).tolist()


def _event(iteration: int, phase: str, outputs: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """A metrics line: the fixed fields win; an output blob of the same name gets " (output)" added."""
    record: dict[str, Any] = {"iteration": iteration, "phase": phase}
    for name, value in outputs.items():
        if value is not None:
            record[f"{name} (output)" if name in fields or name in record else name] = value
    record.update(fields)
    return record


def _probe(net: CaffeNet, config: TrainConfig) -> Probe | None:
    """What the test passes of `net` score: the probe of its dataset's task."""
    info = config.dataset_info or {}
    return task_of(info).part("probe")(net, info)


def _mean_values(shares: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The mean over the ranks of logged values (numbers or lists); a value whose shape differs
    between ranks (a map of an image size that varies) is rank 0's."""
    mean = {}
    for name, value in shares[0].items():
        values = [share[name] for share in shares]
        arrays = [np.asarray(item, dtype=np.float64) for item in values if item is not None]
        if len(arrays) != len(values) or len({array.shape for array in arrays}) != 1:
            mean[name] = value
        else:
            average = np.mean(arrays, axis=0)
            mean[name] = float(average) if average.ndim == 0 else average.tolist()
    return mean


# ----------------------------------------------------------------------------------------------
# the run


class _Training:
    """One Solve on this rank: nets, streams, solver and the loop. Built fully before the first
    iteration; every collective call happens on every rank in the same order."""

    def __init__(self, config: TrainConfig, job_dir: Path, feeds: Feeds | None,
                 progress: Callable[[dict[str, Any]], None] | None, ranks: Ranks) -> None:
        self.config, self.job_dir, self.ranks = config, job_dir, ranks
        self.replicas = ranks.world_size      # ranks that each train on their own batches
        self.param = caffe_pb2.SolverParameter()
        self.param.CopyFrom(config.solver)
        check_solver(self.param)
        check_amp(config.amp)
        self.device = ranks.device
        configure_backends(config.cudnn_benchmark)
        seed = self.param.random_seed if self.param.random_seed >= 0 else None
        if seed is not None:
            torch.manual_seed(seed + ranks.rank)     # Caffe seeds random_seed + solver_rank (§4.1)
        reads = config.resume is not None and self._reads_snapshot()
        snapshot = read_snapshot(config.resume) if reads else None
        point = ranks.broadcast_object(None if snapshot is None else
                                       (snapshot.iteration, snapshot.current_step, snapshot.extra))
        extra = point[2] if point is not None else None
        if extra is not None and "data_seed" in extra:
            self.data_seed = extra["data_seed"]
        elif seed is not None:
            self.data_seed = seed
        else:   # every rank reads the same global sequence: rank 0's draw
            self.data_seed = ranks.broadcast_object(torch.initial_seed() % 2**63)
        train_spec, test_specs = _net_specs(config)
        workers = config.data_workers if config.data_workers is not None else (
            4 if self.device.type == "cuda" else 0)
        self.train_stream = self._stream(train_spec, feeds, 0, workers)
        self.test_streams = [self._stream(spec, feeds, number, workers)
                             for number, spec in enumerate(test_specs, start=1)]
        self.train_net = self._net(train_spec, self.train_stream, seed)
        enable_recompute(self.train_net, config.recompute)
        synced = config.sync_batchnorm and ranks.distributed and synchronise_batch_norm(self.train_net) > 0
        self.test_nets = [self._net(spec, stream, seed)
                          for spec, stream in zip(test_specs, self.test_streams, strict=True)]
        for net in self.test_nets:
            net.share_weights_from(self.train_net)
        for weights in config.weights or list(self.param.weights):
            for net in (self.train_net, *self.test_nets):
                net.load_weights(weights)
        self.probes = [_probe(net, config) for net in self.test_nets]
        self.solver = self._solver()
        self.smoothed = SmoothedLoss(self.param.average_loss)
        self.scaler = LossScaler(config.amp == "fp16")
        if snapshot is not None:
            self._restore(snapshot)
        elif point is not None:
            self.solver.iter, self.solver.current_step = point[0], point[1]
        self._share_start([*self.train_net.state_dict(keep_vars=True).values(),
                           *(t for net in self.test_nets for t in net.state_dict(keep_vars=True).values()),
                           *self.solver.history])
        if extra is not None:
            self._continue(extra)
        self.parallel = self._parallel(synced)
        self.forward = torch.compile(self.parallel) if config.compile else self.parallel
        resumed = point[0] if point is not None else None
        self.metrics = MetricsLog(job_dir / METRICS_FILE, resumed, progress) if ranks.is_root else None
        self.prefix = self._prefix()
        self.snapshots: list[Path] = []
        self.last_snapshot = resumed

    def _shard(self, index: int) -> Shard:
        """This rank's share of stream `index` (0: train, then the test nets')."""
        return Shard(self.ranks.rank, self.ranks.world_size)

    def _reads_snapshot(self) -> bool:
        """Whether this rank reads the snapshot resumed from (the others get it from _share_start)."""
        return self.ranks.is_root

    def _solver(self) -> Solver:
        return Solver(self.param, self.train_net.learnable_params())

    def _restore(self, snapshot: Snapshot) -> None:
        """The snapshot's weights and solver state, on a rank that reads it."""
        self.train_net.load_weights(snapshot.caffemodel)
        self.solver.restore(snapshot.iteration, snapshot.current_step, snapshot.history,
                            source=str(self.config.resume))

    def _share_start(self, tensors: list[torch.Tensor]) -> None:
        """Make the starting weights, statistics and solver history equal on the ranks that train alike."""
        self.ranks.broadcast_(tensors)

    def _parallel(self, synced: bool) -> torch.nn.Module:
        """The train net as this rank runs it: under DDP when there are several ranks."""
        # Without synchronised statistics DDP gives every rank rank 0's BatchNorm sums before each
        # forward, as torch does for its own BatchNorm; synchronised ones are equal everywhere.
        return self.ranks.data_parallel(self.train_net, sync_buffers=not synced)

    def _stream(self, spec: _NetSpec, feeds: Feeds | None, index: int, workers: int) -> BatchStream:
        shard = self._shard(index)
        if feeds is not None and spec.feed_key in feeds:
            return FeedStream(feeds[spec.feed_key], spec.feed_key, shard)
        sources, _ = _sources(spec)
        phase = caffe_pb2.TRAIN if spec.phase == "train" else caffe_pb2.TEST
        root = Path(self.config.dataset_root) if self.config.dataset_root is not None else None
        return data_layer_stream(sources, phase, root, self.data_seed + index, workers,
                                 pin_memory=self.device.type == "cuda", shard=shard, device=self.device)

    def _net(self, spec: _NetSpec, stream: BatchStream, seed: int | None) -> CaffeNet:
        """Build the net with its input shapes taken from the stream's first batch."""
        _, tops = _sources(spec)
        start = stream.position
        first = stream.next()
        stream.seek(start)
        missing = [top for top in tops if top not in first]
        if missing:
            raise UserError(f"the {spec.feed_key} batches have no '{missing[0]}' (they hold "
                            f"{', '.join(first) or 'nothing'}); give every input of the net: "
                            f"{', '.join(tops)}")
        shapes = {top: tuple(torch.as_tensor(first[top]).shape) for top in tops}
        net = self._build_net(spec, shapes, seed)
        net.to(self.device)
        if self.config.channels_last:
            net.to(memory_format=torch.channels_last)
        return net

    def _build_net(self, spec: _NetSpec, shapes: dict[str, tuple[int, ...]], seed: int | None) -> CaffeNet:
        return CaffeNet(spec.net, spec.phase, stages=spec.stages, state=spec.state, input_shapes=shapes,
                        seed=seed, source_map=spec.source_map)

    def _prefix(self) -> str:
        prefix = self.param.snapshot_prefix or SNAPSHOT_PREFIX
        return prefix if Path(prefix).is_absolute() else str(self.job_dir / prefix)

    def _continue(self, extra: dict[str, Any]) -> None:
        """The digitslite sidecar of the snapshot resumed from: this rank's RNG, data positions (of
        all ranks together, so any rank count continues them), the loss window, the loss scale."""
        states = [extra["rng"], *extra.get("rank_rng", [])]
        if self.ranks.rank < len(states):
            set_rng_state(states[self.ranks.rank], self.device)
        else:   # a rank the snapshotted run did not have: a generator of its own, still reproducible
            torch.manual_seed(int(np.random.SeedSequence([self.data_seed, self.solver.iter, self.ranks.rank])
                                  .generate_state(1, np.uint64)[0]))
        counted_batches = extra["format"] == 1     # format 1 counted batches of one process
        saved = [extra["feeds"]["train"], *extra["feeds"]["val"]]
        for stream, position in zip([self.train_stream, *self.test_streams], saved, strict=False):
            stream.seek(stream.advanced(0, position) if counted_batches else position)
        self.smoothed.load(extra["smoothed_loss"])
        self.scaler.load(extra["loss_scale"])

    def _record(self, record: dict[str, Any]) -> None:
        if self.metrics is not None:
            self.metrics.write(record)

    # ------------------------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool] | None) -> TrainResult:
        param, solver = self.param, self.solver
        stopped = False
        clock = _Throughput()
        try:
            while solver.iter < param.max_iter:
                if self.ranks.any(should_stop is not None and should_stop()):
                    stopped = True
                    break
                if self._test_due():
                    clock.excluding(self.test_all)
                display = param.display > 0 and solver.iter % param.display == 0
                iteration = solver.iter
                outputs, images = self.step()
                rate = solver.apply_update() if self.scaler.unscale(self._tensors()) else solver.skip_update()
                clock.add(images * self.replicas)
                if display:
                    values, _ = self._train_values(outputs)
                    self._record(_event(iteration, "train", values, lr=rate, images_per_s=clock.rate(),
                                        loss=float(self.smoothed.value)))
                if param.snapshot > 0 and solver.iter % param.snapshot == 0:
                    clock.excluding(self.snapshot)
            if stopped:
                if self.last_snapshot != solver.iter:
                    self.snapshot()
            else:
                self._finish()
        finally:
            if self.metrics is not None:
                self.metrics.close()
            for stream in (self.train_stream, *self.test_streams):
                stream.close()
        loss = float(self.smoothed.value) if self.smoothed.values else None
        return TrainResult(solver.iter, stopped, self.snapshots, loss,
                           self.metrics.path if self.metrics is not None else None)

    def _tensors(self) -> list[torch.Tensor]:
        return [p.tensor for p in self.solver.params]

    def _test_due(self) -> bool:
        interval, iteration = self.param.test_interval, self.solver.iter
        return bool(self.test_nets) and interval > 0 and iteration % interval == 0 and (
            iteration > 0 or self.param.test_initialization)

    def step(self) -> tuple[dict[str, torch.Tensor], int]:
        """iter_size forward/backward passes accumulating gradients (across ranks only on the last);
        returns the last outputs and the number of images this rank saw."""
        for tensor in self._tensors():
            tensor.grad = None
        total, images, outputs = None, 0, {}
        for micro_step in range(self.param.iter_size):
            batch = to_device(self.train_stream.next(), self.device, self.config.channels_last)
            images += next(iter(batch.values())).shape[0] if batch else 0
            with self.ranks.accumulating(self.parallel, last=micro_step == self.param.iter_size - 1):
                with autocast(self.device, self.config.amp):
                    outputs = self.forward(batch)
                    loss = self.train_net.loss(outputs)
                if loss.requires_grad:
                    self.scaler.scaled(loss).backward()
            total = loss.detach() if total is None else total + loss.detach()
        self.smoothed.add(self.ranks.mean(total / self.param.iter_size))
        return outputs, images

    def _train_values(self, outputs: Mapping[str, torch.Tensor],
                      **fields: float) -> tuple[dict[str, Any], dict[str, Any]]:
        """The train net's outputs to log, and `fields`: their means over the ranks, on rank 0."""
        values = {name: _blob_value(outputs[name]) for name in self.train_net.output_names}
        shares = self.ranks.gather((values, fields))
        if shares is None:
            return values, fields
        return _mean_values([share[0] for share in shares]), _mean_values([share[1] for share in shares])

    @torch.no_grad()
    def test_all(self) -> None:
        """Caffe's TestAll: each test net's outputs averaged over test_iter passes (§4.6). The passes
        are dealt round-robin to the ranks; their sums and confusion matrices meet on rank 0."""
        for index, (net, stream, probe) in enumerate(zip(self.test_nets, self.test_streams, self.probes,
                                                         strict=True)):
            iterations = self.param.test_iter[index]
            start = stream.position
            sums: dict[str, torch.Tensor] = {}
            tally = probe.tally() if probe else None
            keep = probe.keep if probe else ()
            reported = set(net.output_names) | set(net.loss_weights)
            for _ in self._test_passes(iterations):
                batch = to_device(stream.next(), self.device, self.config.channels_last)
                with autocast(self.device, self.config.amp):
                    outputs = self._test_forward(index, batch, keep)
                for name in reported.intersection(outputs):   # outputs and loss blobs (a loss layer may
                    value = outputs[name].detach().double()   # have no top)
                    sums[name] = value if name not in sums else sums[name] + value
                if tally is not None and all(name in outputs for name in keep):  # a pipeline's last stage
                    tally.update(outputs)
            stream.seek(stream.advanced(start, iterations))
            shares = self.ranks.gather(({name: value.cpu() for name, value in sums.items()}, tally))
            if shares is not None:
                self._write_test(index, net, iterations, shares)

    def _test_passes(self, count: int) -> range:
        """This rank's share of a test's `count` passes."""
        return self.ranks.passes(count)

    def _test_forward(self, index: int, batch: Mapping[str, torch.Tensor],
                      keep: Sequence[str]) -> dict[str, torch.Tensor]:
        """Test net `index` on one batch: its outputs and loss blobs, and the blobs of `keep`."""
        return self.test_nets[index](batch, keep=keep)

    def _write_test(self, index: int, net: CaffeNet, iterations: int,
                    shares: Sequence[tuple[dict[str, torch.Tensor], Tally | None]]) -> None:
        sums: dict[str, torch.Tensor] = {}
        tally = shares[0][1]
        for rank_sums, rank_tally in shares:
            for name, value in rank_sums.items():
                sums[name] = value if name not in sums else sums[name] + value
            if rank_tally is not tally:
                tally.merge(rank_tally)
        means = {name: total / iterations for name, total in sums.items()}
        loss = sum(float(means[name].sum()) * weight for name, weight in net.loss_weights.items())
        fields: dict[str, Any] = {"loss": loss}
        if len(self.test_nets) > 1:
            fields["test_net"] = index
        if tally is not None:
            fields.update(tally.fields())
        values = {name: _blob_value(means[name]) for name in net.output_names}
        self._record(_event(self.solver.iter, "val", values, **fields))

    def snapshot(self) -> None:
        """Rank 0 writes; every rank hands it its RNG state."""
        states = self.ranks.gather(rng_state(self.device))
        gathered = self._gathered_state()
        self.last_snapshot = self.solver.iter
        if states is None or gathered is None:
            return
        extra = {
            "rng": states[0],
            "rank_rng": states[1:],
            "ranks": self.ranks.world_size,
            "feeds": {"train": self.train_stream.position, "val": [s.position for s in self.test_streams]},
            "smoothed_loss": self.smoothed.state(),
            "loss_scale": self.scaler.state(),
            "data_seed": self.data_seed,
        }
        files = write_snapshot(self.prefix, self.solver.iter, self.solver.current_step,
                               self.train_net.net_param, *gathered, extra)
        self.snapshots.append(files.caffemodel)

    def _gathered_state(self) -> tuple[dict[str, list[np.ndarray]], list[np.ndarray]] | None:
        """The whole train net's weights and solver history on rank 0 (None on the others)."""
        return (self.train_net.weights(), self.solver.history_arrays()) if self.ranks.is_root else None

    def _display_pass(self, batch: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], float]:
        """The train net's outputs and loss on `batch`, without a gradient (the final display)."""
        outputs = self.train_net(batch)
        return outputs, float(self.train_net.loss(outputs))

    def _finish(self) -> None:
        """After max_iter: Caffe's final snapshot, display pass and test (§4.2)."""
        param, iteration = self.param, self.solver.iter
        if param.snapshot_after_train and self.last_snapshot != iteration and (
                param.snapshot == 0 or iteration % param.snapshot != 0):
            self.snapshot()
        if param.display > 0 and iteration % param.display == 0:
            with torch.no_grad(), autocast(self.device, self.config.amp):
                batch = to_device(self.train_stream.next(), self.device, self.config.channels_last)
                outputs, loss = self._display_pass(batch)
            values, fields = self._train_values(outputs, loss=loss)
            rate, _ = learning_rate(param, iteration, self.solver.current_step)
            self._record(_event(iteration, "train", values, lr=rate, **fields))
        if param.test_interval > 0 and iteration % param.test_interval == 0 and self.test_nets:
            self.test_all()


class _Throughput:
    """Training images per second of wall time since the last report, test passes and snapshots
    excluded. Read after a host sync (the logged values), so queued GPU work is counted."""

    def __init__(self) -> None:
        self.images, self.excluded, self.since = 0, 0.0, time.perf_counter()

    def add(self, images: int) -> None:
        self.images += images

    def excluding(self, work: Callable[[], None]) -> None:
        started = time.perf_counter()
        work()
        self.excluded += time.perf_counter() - started

    def rate(self) -> float | None:
        now = time.perf_counter()
        seconds = now - self.since - self.excluded
        rate = self.images / seconds if seconds > 0 else None
        self.images, self.excluded, self.since = 0, 0.0, now
        return rate
