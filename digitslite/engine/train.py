"""The training loop: Caffe's Solver::Solve/Step (caffe-spec §4.2, §4.6, §4.8) on CaffeNets.

Used by `digitslite train` and the job worker. It writes `metrics.jsonl` in the job folder, one
flushed JSON line per display or test event, and snapshots that a later run resumes bit for bit.
"""
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from digitslite.caffe import caffe_pb2
from digitslite.caffe.prototxt import filter_net, read_net_located
from digitslite.caffe.shapes import canonical_axis, input_tops, is_source
from digitslite.engine.feeds import BatchStream, FeedStream, data_layer_stream
from digitslite.engine.lr_policy import learning_rate
from digitslite.engine.metrics import ConfusionMatrix
from digitslite.engine.net import CaffeNet
from digitslite.engine.snapshot import read_snapshot, rng_state, set_rng_state, write_snapshot
from digitslite.engine.solver import SmoothedLoss, Solver, check_solver
from digitslite.engine.speed import (
    LossScaler,
    autocast,
    check_amp,
    configure_backends,
    resolve_device,
    to_device,
)
from digitslite.errors import UserError

METRICS_FILE = "metrics.jsonl"
SEGMENTATION_METRICS = ("pixel_accuracy", "mean_accuracy", "mean_iu", "fw_iu", "per_class_iu")
LARGEST_LOGGED_BLOB = 1024     # output blobs with more values (e.g. a score map) are not logged
Feeds = Mapping[str, Iterable[Mapping[str, torch.Tensor]]]


@dataclass
class TrainConfig:
    """What to train and how. `net` is an all-in-one train/val net (filtered like DIGITS: TRAIN with
    stage "train", TEST with stage "val", plus `stages`); None takes the solver's net fields.
    Relative net paths in the solver resolve against `solver_dir`. `weights` (default: the solver's
    `weights`) are copied in by layer name; `resume` is a .solverstate to continue from."""

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


@dataclass
class _Probe:
    """Where a segmentation test net keeps its scores and labels, for the confusion matrix."""

    score: str
    label: str
    axis: int
    classes: int
    ignore_label: int | None


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
        """`keep_before`: on resume, drop lines at or after that iteration (they are redone)."""
        self.path, self.progress = path, progress
        kept = []
        if keep_before is not None and path.is_file():
            kept = [line for line in path.read_text().splitlines() if _iteration(line) < keep_before]
        path.write_text("".join(line + "\n" for line in kept))
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


def _segmentation_probe(net: CaffeNet) -> _Probe | None:
    """The first SoftmaxWithLoss or Accuracy layer whose scores have spatial axes after the class axis."""
    for layer, shapes in zip(net.net_param.layer, net.shapes, strict=True):
        if layer.type not in ("SoftmaxWithLoss", "Accuracy") or len(layer.bottom) < 2:
            continue
        scores = shapes.bottoms[0]
        loss = layer.type == "SoftmaxWithLoss"
        axis = canonical_axis(layer.softmax_param.axis if loss else layer.accuracy_param.axis, len(scores))
        if axis == len(scores) - 1:
            continue
        holder = layer.loss_param if loss else layer.accuracy_param
        ignore = holder.ignore_label if holder.HasField("ignore_label") else None
        return _Probe(layer.bottom[0], layer.bottom[1], axis, scores[axis], ignore)
    return None


# ----------------------------------------------------------------------------------------------
# the run


class _Training:
    """One Solve: nets, streams, solver and the loop. Built fully before the first iteration."""

    def __init__(self, config: TrainConfig, job_dir: Path, feeds: Feeds | None,
                 progress: Callable[[dict[str, Any]], None] | None) -> None:
        self.config, self.job_dir = config, job_dir
        self.param = caffe_pb2.SolverParameter()
        self.param.CopyFrom(config.solver)
        check_solver(self.param)
        check_amp(config.amp)
        self.device = resolve_device(config.device)
        configure_backends(config.cudnn_benchmark)
        seed = self.param.random_seed if self.param.random_seed >= 0 else None
        if seed is not None:
            torch.manual_seed(seed)
        self.data_seed = seed if seed is not None else torch.initial_seed() % 2**63
        train_spec, test_specs = _net_specs(config)
        workers = config.data_workers if config.data_workers is not None else (
            4 if self.device.type == "cuda" else 0)
        self.train_stream = self._stream(train_spec, feeds, 0, workers)
        self.test_streams = [self._stream(spec, feeds, number, workers)
                             for number, spec in enumerate(test_specs, start=1)]
        self.train_net = self._net(train_spec, self.train_stream, seed)
        self.test_nets = [self._net(spec, stream, seed)
                          for spec, stream in zip(test_specs, self.test_streams, strict=True)]
        for net in self.test_nets:
            net.share_weights_from(self.train_net)
        for weights in config.weights or list(self.param.weights):
            for net in (self.train_net, *self.test_nets):
                net.load_weights(weights)
        self.probes = [_segmentation_probe(net) for net in self.test_nets]
        self.solver = Solver(self.param, self.train_net.learnable_params())
        self.smoothed = SmoothedLoss(self.param.average_loss)
        self.scaler = LossScaler(config.amp == "fp16")
        self.forward = torch.compile(self.train_net) if config.compile else self.train_net
        resumed = self._resume(config.resume) if config.resume is not None else None
        self.metrics = MetricsLog(job_dir / METRICS_FILE, resumed, progress)
        self.prefix = self._prefix()
        self.snapshots: list[Path] = []
        self.last_snapshot = resumed

    def _stream(self, spec: _NetSpec, feeds: Feeds | None, index: int, workers: int) -> BatchStream:
        if feeds is not None and spec.feed_key in feeds:
            return FeedStream(feeds[spec.feed_key], spec.feed_key)
        sources, _ = _sources(spec)
        phase = caffe_pb2.TRAIN if spec.phase == "train" else caffe_pb2.TEST
        root = Path(self.config.dataset_root) if self.config.dataset_root is not None else None
        return data_layer_stream(sources, phase, root, self.data_seed + index, workers,
                                 pin_memory=self.device.type == "cuda")

    def _net(self, spec: _NetSpec, stream: BatchStream, seed: int | None) -> CaffeNet:
        """Build the net with its input shapes taken from the stream's first batch."""
        _, tops = _sources(spec)
        first = stream.next()
        stream.seek(0)
        missing = [top for top in tops if top not in first]
        if missing:
            raise UserError(f"the {spec.feed_key} batches have no '{missing[0]}' (they hold "
                            f"{', '.join(first) or 'nothing'}); give every input of the net: "
                            f"{', '.join(tops)}")
        shapes = {top: tuple(torch.as_tensor(first[top]).shape) for top in tops}
        net = CaffeNet(spec.net, spec.phase, stages=spec.stages, state=spec.state, input_shapes=shapes,
                       seed=seed, source_map=spec.source_map)
        net.to(self.device)
        if self.config.channels_last:
            net.to(memory_format=torch.channels_last)
        return net

    def _prefix(self) -> str:
        prefix = self.param.snapshot_prefix or "snapshot"
        return prefix if Path(prefix).is_absolute() else str(self.job_dir / prefix)

    def _resume(self, path: str | Path) -> int:
        snapshot = read_snapshot(path)
        self.train_net.load_weights(snapshot.caffemodel)
        self.solver.restore(snapshot.iteration, snapshot.current_step, snapshot.history, source=str(path))
        if snapshot.extra is not None:
            extra = snapshot.extra
            set_rng_state(extra["rng"])
            self.train_stream.seek(extra["feeds"]["train"])
            for stream, position in zip(self.test_streams, extra["feeds"]["val"], strict=False):
                stream.seek(position)
            self.smoothed.load(extra["smoothed_loss"])
            self.scaler.load(extra["loss_scale"])
        return snapshot.iteration

    # ------------------------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool] | None) -> TrainResult:
        param, solver = self.param, self.solver
        stopped = False
        clock = _Throughput()
        try:
            while solver.iter < param.max_iter:
                if should_stop is not None and should_stop():
                    stopped = True
                    break
                if self._test_due():
                    clock.excluding(self.test_all)
                display = param.display > 0 and solver.iter % param.display == 0
                iteration = solver.iter
                outputs, images = self.step()
                rate = solver.apply_update() if self.scaler.unscale(self._tensors()) else solver.skip_update()
                clock.add(images)
                if display:
                    values = {name: _blob_value(outputs[name]) for name in self.train_net.output_names}
                    self.metrics.write(_event(iteration, "train", values, lr=rate, images_per_s=clock.rate(),
                                              loss=float(self.smoothed.value)))
                if param.snapshot > 0 and solver.iter % param.snapshot == 0:
                    clock.excluding(self.snapshot)
            if stopped:
                if self.last_snapshot != solver.iter:
                    self.snapshot()
            else:
                self._finish()
        finally:
            self.metrics.close()
            for stream in (self.train_stream, *self.test_streams):
                stream.close()
        loss = float(self.smoothed.value) if self.smoothed.values else None
        return TrainResult(solver.iter, stopped, self.snapshots, loss, self.metrics.path)

    def _tensors(self) -> list[torch.Tensor]:
        return [p.tensor for p in self.solver.params]

    def _test_due(self) -> bool:
        interval, iteration = self.param.test_interval, self.solver.iter
        return bool(self.test_nets) and interval > 0 and iteration % interval == 0 and (
            iteration > 0 or self.param.test_initialization)

    def step(self) -> tuple[dict[str, torch.Tensor], int]:
        """iter_size forward/backward passes accumulating gradients; returns the last outputs and
        the number of images seen."""
        for tensor in self._tensors():
            tensor.grad = None
        total, images, outputs = None, 0, {}
        for _ in range(self.param.iter_size):
            batch = to_device(self.train_stream.next(), self.device, self.config.channels_last)
            images += next(iter(batch.values())).shape[0] if batch else 0
            with autocast(self.device, self.config.amp):
                outputs = self.forward(batch)
                loss = self.train_net.loss(outputs)
            if loss.requires_grad:
                self.scaler.scaled(loss).backward()
            total = loss.detach() if total is None else total + loss.detach()
        self.smoothed.add(total / self.param.iter_size)
        return outputs, images

    @torch.no_grad()
    def test_all(self) -> None:
        """Caffe's TestAll: each test net's outputs averaged over test_iter passes (§4.6)."""
        for index, (net, stream, probe) in enumerate(zip(self.test_nets, self.test_streams, self.probes,
                                                         strict=True)):
            iterations = self.param.test_iter[index]
            sums: dict[str, torch.Tensor] = {}
            matrix = ConfusionMatrix(probe.classes, probe.ignore_label) if probe else None
            keep = (probe.score, probe.label) if probe else ()
            reported = set(net.output_names) | set(net.loss_weights)
            for _ in range(iterations):
                batch = to_device(stream.next(), self.device, self.config.channels_last)
                with autocast(self.device, self.config.amp):
                    outputs = net(batch, keep=keep)
                for name in reported:   # outputs and loss blobs (a loss layer may have no top)
                    value = outputs[name].detach().double()
                    sums[name] = value if name not in sums else sums[name] + value
                if matrix is not None:
                    prediction = outputs[probe.score].argmax(probe.axis)
                    matrix.update(prediction, outputs[probe.label].reshape(prediction.shape))
            means = {name: total / iterations for name, total in sums.items()}
            loss = sum(float(means[name].sum()) * weight for name, weight in net.loss_weights.items())
            fields: dict[str, Any] = {"loss": loss}
            if len(self.test_nets) > 1:
                fields["test_net"] = index
            if matrix is not None:
                summary = matrix.summary()
                fields.update({key: summary[key] for key in SEGMENTATION_METRICS})
            values = {name: _blob_value(means[name]) for name in net.output_names}
            self.metrics.write(_event(self.solver.iter, "val", values, **fields))

    def snapshot(self) -> None:
        extra = {
            "rng": rng_state(),
            "feeds": {"train": self.train_stream.position, "val": [s.position for s in self.test_streams]},
            "smoothed_loss": self.smoothed.state(),
            "loss_scale": self.scaler.state(),
            "data_seed": self.data_seed,
        }
        files = write_snapshot(self.prefix, self.solver.iter, self.solver.current_step,
                               self.train_net.net_param,
                               self.train_net.weights(), self.solver.history_arrays(), extra)
        self.snapshots.append(files.caffemodel)
        self.last_snapshot = self.solver.iter

    def _finish(self) -> None:
        """After max_iter: Caffe's final snapshot, display pass and test (§4.2)."""
        param, iteration = self.param, self.solver.iter
        if param.snapshot_after_train and self.last_snapshot != iteration and (
                param.snapshot == 0 or iteration % param.snapshot != 0):
            self.snapshot()
        if param.display > 0 and iteration % param.display == 0:
            with torch.no_grad(), autocast(self.device, self.config.amp):
                batch = to_device(self.train_stream.next(), self.device, self.config.channels_last)
                outputs = self.train_net(batch)
                loss = float(self.train_net.loss(outputs))
            values = {name: _blob_value(outputs[name]) for name in self.train_net.output_names}
            rate, _ = learning_rate(param, iteration, self.solver.current_step)
            self.metrics.write(_event(iteration, "train", values, lr=rate, loss=loss))
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


def train(config: TrainConfig, job_dir: Path, *, feeds: Feeds | None = None,
          should_stop: Callable[[], bool] | None = None,
          progress: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train as Caffe's `caffe train` would, writing metrics and snapshots into `job_dir`.

    `feeds` maps "train" / "val" to re-iterable batches ({top name: tensor}) that replace the
    nets' data layers; without them Data layers read their LMDB datasets. `should_stop` is polled
    once per iteration; when it returns True the run snapshots and returns (SIGTERM handling).
    `progress` receives every metrics record as it is written.
    """
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    return _Training(config, job_dir, feeds, progress).run(should_stop)
