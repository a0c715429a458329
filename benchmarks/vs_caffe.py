"""digitslite against the tools its users would pick instead: the real Caffe and OpenCV's DNN module.

LeNet (64x1x28x28), DIGITS' FCN-AlexNet deploy and FCN-8s deploy (1x3x500x500; --size for smaller),
all with the same He-scaled random weights (one .caffemodel every engine reads), forward, and
forward+backward through a SoftmaxWithLoss on the score blob. Caffe (the caffe-oracle build, CPU,
OpenBLAS) and OpenCV (forward only) each run in their own process (benchmarks/baseline_worker.py)
and time themselves; digitslite runs here, by default (no flags). Every engine gets --threads
threads. Outputs, the loss and the conv gradients are checked to agree before anything is timed;
the repetitions are interleaved engine by engine (with a settle pause between turns, so that
one engine's spinning thread pool does not slow the next), and the medians and ratios are printed.

    .venv/bin/python benchmarks/vs_caffe.py                          # all three nets, 2 threads
    .venv/bin/python benchmarks/vs_caffe.py --nets fcn_alexnet --size 256 --reps 5
    .venv/bin/python benchmarks/vs_caffe.py --device cuda --json out.json   # ours on the GPU

Goals (CPU): digitslite <= 0.8x Caffe's time forward and forward+backward on the FCNs, and
<= 1.0x OpenCV's forward time. Without the caffe-oracle build (CAFFE_ORACLE, default
/work/caffe-oracle-build/python, then ~/.cache/caffe-oracle/python), Caffe is skipped with a note.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from google.protobuf import text_format

from digitslite.caffe import caffe_pb2
from digitslite.caffe.caffemodel import write_caffemodel
from digitslite.caffe.prototxt import read_net
from digitslite.engine.net import CaffeNet

HERE = Path(__file__).resolve().parent
PEER = HERE.parents[1] / "shared" / "peer_nets"
ORACLES = [Path(os.environ["CAFFE_ORACLE"])] if os.environ.get("CAFFE_ORACLE") else [
    Path("/work/caffe-oracle-build/python"), Path.home() / ".cache" / "caffe-oracle" / "python"]
# ../shared/caffe_golden's tolerances: outputs 1e-4; a loss (a reduction: Caffe adds the pixels'
# terms one by one in float32) 1e-3; gradients see check_agreement.
FORWARD_TOLERANCE, LOSS_TOLERANCE, GRADIENT_NORM_TOLERANCE = 1e-4, 1e-3, 1e-2
# Between two engines' turns: OpenBLAS, OpenMP and OpenCV keep their threads spinning for a while
# after each call, which on a 2-core machine would steal the next engine's cores.
SETTLE_S = 0.3


@dataclass(frozen=True)
class Case:
    prototxt: str
    channels: int
    score: str                 # the blob the loss reads (the deploy output before any Softmax)
    default_batch: int
    default_size: int


CASES = {
    "lenet": Case("caffe__mnist__lenet.prototxt", 1, "ip2", 64, 28),
    "fcn_alexnet": Case("digits__semantic-segmentation__fcn_alexnet.deploy.prototxt", 3, "score", 1, 500),
    "fcn8s": Case("fcn__voc-fcn8s__deploy.prototxt", 3, "score", 1, 500),
}


def _deploy(case: Case, shape: tuple[int, ...]) -> caffe_pb2.NetParameter:
    """The peer deploy net with its input as an Input layer of `shape`."""
    net = read_net(PEER / case.prototxt)
    layers = list(net.layer)
    if net.input:
        del net.input[:], net.input_shape[:], net.input_dim[:]
        source = caffe_pb2.LayerParameter(name="input", type="Input", top=["data"])
        layers.insert(0, source)
    del net.layer[:]
    net.layer.extend(layers)
    data = next(layer for layer in net.layer if layer.type == "Input")
    del data.input_param.shape[:]
    data.input_param.shape.add(dim=shape)
    return net


def _train(deploy: caffe_pb2.NetParameter, case: Case,
           label_shape: tuple[int, ...]) -> caffe_pb2.NetParameter:
    """The deploy net without its final Softmax, plus a label Input and a SoftmaxWithLoss."""
    net = caffe_pb2.NetParameter()
    net.CopyFrom(deploy)
    if net.layer[-1].type == "Softmax":
        del net.layer[-1]
    label = net.layer.add(name="label_input", type="Input", top=["label"])
    label.input_param.shape.add(dim=label_shape)
    net.layer.add(name="loss", type="SoftmaxWithLoss", bottom=[case.score, "label"], top=["loss"])
    return net


def random_weights(net: CaffeNet, seed: int) -> dict[str, list[np.ndarray]]:
    """He-scaled normal weights, 0.1-scaled normal biases (the recipe of ../shared/caffe_golden)."""
    rng = np.random.RandomState(seed)
    weights = {}
    for layer, shapes in net.blob_shapes().items():
        if shapes:
            weights[layer] = []
            for shape in shapes:
                fan = int(np.prod(shape[1:])) if len(shape) > 1 else 0
                value = rng.randn(*shape).astype(np.float32)
                value *= np.float32(np.sqrt(2.0 / fan)) if fan else np.float32(0.1)
                weights[layer].append(value)
    return weights


class Ours:
    """digitslite, by default: the deploy net for forward, the train net for forward+backward."""

    def __init__(self, workdir: Path, device: torch.device) -> None:
        inputs = np.load(workdir / "inputs.npz")
        self.device = device
        self.deploy = CaffeNet(read_net(workdir / "deploy.prototxt"), "test").to(device)
        self.train = CaffeNet(read_net(workdir / "train.prototxt"), "test").to(device)
        for net in (self.deploy, self.train):
            net.load_weights(workdir / "weights.caffemodel")
        self.data = torch.from_numpy(inputs["data"]).to(device)
        self.label = torch.from_numpy(inputs["label"]).to(device)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def forward(self) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return self.deploy({"data": self.data})

    def step(self) -> torch.Tensor:
        for param in self.train.parameters():
            param.grad = None
        loss = self.train.loss(self.train({"data": self.data, "label": self.label}))
        loss.backward()
        return loss

    def timed(self, command: str) -> float:
        self._sync()
        start = time.perf_counter()
        self.forward() if command == "forward" else self.step()
        self._sync()
        return time.perf_counter() - start

    def results(self) -> dict[str, np.ndarray]:
        found = {f"out:{name}": value.float().cpu().numpy() for name, value in self.forward().items()}
        found["loss"] = self.step().detach().float().cpu().numpy()
        for learnable in self.train.learnable_params():
            if learnable.index == 0 and learnable.tensor.grad is not None:
                found[f"grad:{learnable.layer}"] = learnable.tensor.grad.float().cpu().numpy()
        return found


class Worker:
    """A baseline engine in its own process (baseline_worker.py), timing itself."""

    def __init__(self, engine: str, python: Path, workdir: Path, threads: int) -> None:
        environment = os.environ | {"OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
        environment.pop("PYTHONPATH", None)
        self.engine = engine
        self.process = subprocess.Popen([str(python), str(HERE / "baseline_worker.py"), engine, str(workdir),
                                         str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=environment)
        if self.process.stdout.readline().strip() != "ready":
            self.close()
            raise SystemExit(f"the {engine} worker failed to start (see its messages above)")
        self.results = dict(np.load(workdir / f"{engine}.npz"))

    def timed(self, command: str) -> float:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


class DisagreementError(Exception):
    """Two engines' results differ beyond the tolerance: that engine is not timed."""


def _error(ours: np.ndarray, theirs: np.ndarray, norm: bool) -> float:
    """max |diff| / max |theirs| (the golden rule), or with `norm` the ratio of 2-norms."""
    theirs = np.asarray(theirs, dtype=np.float32).reshape(ours.shape)
    if norm:
        return float(np.linalg.norm(ours - theirs) / max(float(np.linalg.norm(theirs)), 1e-12))
    return float(np.abs(ours - theirs).max() / max(float(np.abs(theirs).max()), 1e-6))


def check_agreement(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray], engine: str) -> list[str]:
    """Outputs within 1e-4 of the largest value and the loss within 1e-3, else DisagreementError.
    Gradients within 1e-2 in 2-norm: rounding puts a few ReLU inputs near 0 on the other side in
    one engine, and each such flip reroutes a whole fc6 unit's gradient through every layer below
    it (one flip of 100k units in FCN-AlexNet at 128x128 moves conv1's gradient by 1.7e-3 in norm,
    5e-3 element-wise), so a bound tighter than that fails between two correct float32 engines."""
    lines = []
    for key in sorted(set(ours) & set(theirs)):
        gradient = key.startswith("grad:")
        tolerance = FORWARD_TOLERANCE if key.startswith("out:") else LOSS_TOLERANCE if key == "loss" \
            else GRADIENT_NORM_TOLERANCE
        if theirs[key].size != ours[key].size:
            raise DisagreementError(f"digitslite and {engine} give {key} of different sizes")
        error = _error(ours[key], theirs[key], norm=gradient)
        if error > tolerance:
            raise DisagreementError(f"digitslite and {engine} disagree on {key}: relative error {error:.2e} "
                               f"> {tolerance:g}")
        lines.append(f"{key} {error:.1e}")
    if not lines:
        raise DisagreementError(f"digitslite and {engine} share no result to compare")
    return lines


def prepare(name: str, case: Case, batch: int, size: int, workdir: Path) -> None:
    """Write the nets, the shared random weights and the inputs every engine reads."""
    shape = (batch, case.channels, size, size)
    deploy = _deploy(case, shape)
    net = CaffeNet(deploy, "test")
    score = _top_shape(net, case.score)
    label_shape = (batch,) if len(score) == 2 else (batch, 1, *score[2:])
    (workdir / "deploy.prototxt").write_text(text_format.MessageToString(deploy))
    (workdir / "train.prototxt").write_text(text_format.MessageToString(_train(deploy, case, label_shape)))
    write_caffemodel(workdir / "weights.caffemodel", deploy, random_weights(net, seed=17))
    rng = np.random.RandomState(18)
    data = rng.uniform(0, 1 if name == "lenet" else 255, shape).astype(np.float32)
    label = rng.randint(0, score[1], label_shape).astype(np.float32)
    np.savez(workdir / "inputs.npz", data=data, label=label)


def _top_shape(net: CaffeNet, blob: str) -> tuple[int, ...]:
    """The shape of `blob` as its last producer makes it."""
    for layer, shapes in zip(reversed(net.net_param.layer), reversed(net.shapes), strict=True):
        if blob in layer.top:
            return tuple(shapes.tops[list(layer.top).index(blob)])
    raise SystemExit(f"the net has no blob {blob!r}")


def caffe_python() -> Path | None:
    return next((path for path in ORACLES if path.is_file()), None)


def opencv_missing() -> str | None:
    """Why OpenCV's DNN cannot be a baseline here, or None. Some builds lack the Caffe importer
    (the CUDA image of the lent GPU machines has none)."""
    try:
        import cv2
    except ImportError:
        return "OpenCV skipped: cv2 is missing (pip install opencv-python-headless==4.13.0.92)"
    if not hasattr(cv2.dnn, "readNetFromCaffe"):
        return f"OpenCV skipped: OpenCV {cv2.__version__} has no Caffe importer (cv2.dnn.readNetFromCaffe)"
    return None


def measure(name: str, case: Case, args: argparse.Namespace, workdir: Path) -> dict:
    """One net: agreement first, then interleaved repetitions of every engine; medians in ms."""
    batch, size = args.batch or case.default_batch, args.size or case.default_size
    if name == "lenet":
        size = case.default_size
    prepare(name, case, batch, size, workdir)
    start_load = os.getloadavg()[:1]
    ours = Ours(workdir, torch.device(args.device))
    found = ours.results()
    workers: dict[str, Worker] = {}
    notes = []
    python = caffe_python()
    try:
        if python is None:
            notes.append("Caffe skipped: no caffe-oracle build (bash ../shared/tools/caffe-oracle/build.sh)")
        else:
            workers["caffe"] = Worker("caffe", python, workdir, args.threads)
        missing = opencv_missing()
        if missing:
            notes.append(missing)
        else:
            workers["opencv"] = Worker("opencv", Path(sys.executable), workdir, args.threads)
        for engine, worker in list(workers.items()):
            try:
                agreed = check_agreement(found, worker.results, engine)
            except DisagreementError as disagreement:
                notes.append(f"{engine} not timed: {disagreement}")
                workers.pop(engine).close()
                continue
            print(f"  agreement with {engine} (relative error): " + ", ".join(agreed[:4]), flush=True)
        times: dict[str, list[float]] = {}
        commands = ["forward", "train"]
        engines = {"digitslite": ours, **workers}
        for rep in range(args.warmup + args.reps):
            for command in commands:
                order = list(engines) if rep % 2 == 0 else list(reversed(engines))
                for engine in order:
                    if engine == "opencv" and command == "train":
                        continue
                    time.sleep(SETTLE_S)
                    elapsed = engines[engine].timed(command)
                    if rep >= args.warmup:
                        times.setdefault(f"{engine} {command}", []).append(elapsed)
    finally:
        for worker in workers.values():
            worker.close()
    medians = {key: statistics.median(values) * 1e3 for key, values in times.items()}
    return {"net": name, "input": [batch, case.channels, size, size], "ms": medians, "notes": notes,
            "load": [round(load, 1) for load in (*start_load, os.getloadavg()[0])]}


def report(result: dict) -> list[str]:
    """The table rows of one net: each engine's median and digitslite's ratio to it."""
    rows = []
    ms = result["ms"]
    shape = "x".join(map(str, result["input"]))
    for command in ("forward", "train"):
        ours = ms[f"digitslite {command}"]
        for engine in ("caffe", "opencv"):
            theirs = ms.get(f"{engine} {command}")
            if theirs is not None:
                rows.append(f"| {result['net']} {shape} | {command} | {ours:.1f} | {engine} {theirs:.1f} | "
                            f"**{ours / theirs:.2f}** |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--size", type=int, help="FCN input height and width (default 500)")
    parser.add_argument("--batch", type=int, help="batch size (default 64 for LeNet, 1 for the FCNs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="digitslite's device; the baselines run on the CPU")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    unknown = set(args.nets.split(",")) - set(CASES)
    if unknown:
        parser.error(f"--nets: unknown {', '.join(sorted(unknown))}; use {', '.join(CASES)}")
    print(f"{args.threads} threads each; digitslite on {args.device}; {args.reps} interleaved reps, "
          "median ms")
    results = []
    for name in args.nets.split(","):
        print(f"{name}:", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"vs_caffe_{name}_") as folder:
            results.append(measure(name, CASES[name], args, Path(folder)))
        for note in results[-1]["notes"]:
            print(f"  note: {note}")
        print("  load average (1 min) at the start and the end: {} and {}".format(*results[-1]["load"]))
        print("\n".join(f"  {row}" for row in report(results[-1])), flush=True)
    print("| net | pass | digitslite ms | baseline ms | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for result in results:
        print("\n".join(report(result)))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
