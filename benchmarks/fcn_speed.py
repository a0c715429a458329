"""FCN inference latency (fp32 and AMP) and training images/s on one device, by default settings.

Inference: the deploy net of FCN-AlexNet (DIGITS) and FCN-8s at 1x3xSxS with He-scaled random
weights, median latency of --reps timed forwards after --warmup: in float32 as `digitslite infer`
runs it (replayed from a CUDA graph on a GPU), in float32 eagerly, and under autocast bf16 and
fp16; each result is checked against the eager float32 one (max |diff| / max |fp32| of the score,
and the share of pixels whose argmax class agrees). Training: the deploy net plus a
SoftmaxWithLoss, forward, backward and digitslite's SGD update (momentum 0.9, weight decay
5e-4), images/s over the timed iterations.

    .venv/bin/python benchmarks/fcn_speed.py --device cuda --json out.json
    .venv/bin/python benchmarks/fcn_speed.py --size 64 --reps 2     # a quick CPU check
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vs_caffe import CASES, prepare

from digitslite.caffe import caffe_pb2
from digitslite.caffe.prototxt import read_net
from digitslite.engine.cuda_graphs import GraphedForward
from digitslite.engine.net import CaffeNet
from digitslite.engine.solver import Solver
from digitslite.engine.speed import AMP_DTYPES, configure_backends

FCNS = ("fcn_alexnet", "fcn8s")


def _timed(run, device: torch.device, warmup: int, reps: int) -> list[float]:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def _net(workdir: Path, name: str, device: torch.device) -> CaffeNet:
    net = CaffeNet(read_net(workdir / f"{name}.prototxt"), "test")
    net.load_weights(workdir / "weights.caffemodel")
    return net.to(device)


def inference(workdir: Path, device: torch.device, warmup: int, reps: int) -> list[dict]:
    net = _net(workdir, "deploy", device).eval()
    forward = GraphedForward(net)    # what digitslite infer runs; eager on the CPU and under autocast
    data = torch.from_numpy(np.load(workdir / "inputs.npz")["data"]).to(device)
    rows = []
    with torch.inference_mode():
        reference = net({"data": data})["score"].float()
        for precision in ("fp32", "fp32 eager", *AMP_DTYPES):
            row = {"precision": precision}
            try:
                def run(precision=precision):
                    if precision == "fp32":
                        return forward({"data": data})["score"]
                    if precision == "fp32 eager":
                        return net({"data": data})["score"]
                    with torch.autocast(device.type, dtype=AMP_DTYPES[precision]):
                        return net({"data": data})["score"]
                score = run().float()
                row["ms"] = statistics.median(_timed(run, device, warmup, reps)) * 1e3
            except RuntimeError as error:     # e.g. an autocast dtype this device lacks
                row["error"] = str(error).splitlines()[0]
                rows.append(row)
                continue
            row["max_rel_diff"] = float((score - reference).abs().max() / reference.abs().max())
            row["argmax_agree"] = float((score.argmax(1) == reference.argmax(1)).float().mean())
            rows.append(row)
    return rows


def training(workdir: Path, device: torch.device, warmup: int, reps: int) -> dict:
    net = _net(workdir, "train", device)
    inputs = np.load(workdir / "inputs.npz")
    batch = {name: torch.from_numpy(inputs[name]).to(device) for name in ("data", "label")}
    sgd = caffe_pb2.SolverParameter(base_lr=1e-10, momentum=0.9, weight_decay=5e-4, lr_policy="fixed")
    solver = Solver(sgd, net.learnable_params())

    def step() -> None:
        for learnable in solver.params:
            learnable.tensor.grad = None
        net.loss(net(batch)).backward()
        solver.apply_update()

    times = _timed(step, device, warmup, reps)
    return {"images_per_s": inputs["data"].shape[0] * len(times) / sum(times),
            "ms_per_iteration": statistics.median(times) * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nets", default=",".join(FCNS))
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--train-reps", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    configure_backends(cudnn_benchmark=device.type == "cuda")
    results = []
    for name in args.nets.split(","):
        with tempfile.TemporaryDirectory(prefix=f"fcn_speed_{name}_") as folder:
            prepare(name, CASES[name], 1, args.size, Path(folder))
            result = {"net": name, "size": args.size, "device": str(device),
                      "inference": inference(Path(folder), device, args.warmup, args.reps),
                      "training": training(Path(folder), device, 1, args.train_reps)}
        results.append(result)
        for row in result["inference"]:
            detail = row.get("error") or (f"{row['ms']:.2f} ms, max rel diff {row['max_rel_diff']:.1e}, "
                                          f"argmax agrees on {100 * row['argmax_agree']:.2f}% of pixels")
            print(f"{name} {args.size}x{args.size} inference {row['precision']}: {detail}", flush=True)
        print(f"{name} training: {result['training']['images_per_s']:.2f} images/s", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
