"""How good fcn_tiny gets on the demo data within a wall-clock budget on this machine.

The issue's target: validation mean IU >= 0.5 within 10 minutes of 2-core CPU training on the
default demo data. The baseline, measured in the same run, is the mean IU of predicting the
majority class everywhere (what a net that learned nothing scores).

    python benchmarks/fcn_tiny_demo.py [--minutes 10] [--threads 2] [--out DIR]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from digitslite.caffe import caffe_pb2
from digitslite.caffe.deploy import bind_data_sources
from digitslite.datasets.create import create_dataset
from digitslite.datasets.demo import write_demo
from digitslite.datasets.options import DatasetOptions
from digitslite.engine.data import SegmentationLmdbDataset
from digitslite.engine.dispatch import train
from digitslite.engine.metrics import ConfusionMatrix
from digitslite.engine.train import TrainConfig
from digitslite.networks import load_network, load_solver


def majority_class_mean_iu(dataset_dir: Path, num_classes: int) -> float:
    """Mean IU on the validation split when every pixel is given the training split's commonest class."""
    train_counts = np.zeros(num_classes, dtype=np.int64)
    for _, label in SegmentationLmdbDataset(dataset_dir / "train_db"):
        train_counts += np.bincount(label.numpy().ravel().clip(0, num_classes - 1), minlength=num_classes)
    majority = int(train_counts.argmax())
    matrix = ConfusionMatrix(num_classes)
    for _, label in SegmentationLmdbDataset(dataset_dir / "val_db"):
        matrix.update(np.full(label.shape, majority), label.numpy())
    return matrix.summary()["mean_iu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--test-interval", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None, help="keep the job folder here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="fcn_tiny_demo."))
    demo = write_demo(work / "demo")
    demo_dir = Path(demo["path"])
    summary = create_dataset(DatasetOptions(images=demo_dir / "images", labels=demo_dir / "labels",
                                            val_images=demo_dir / "val_images",
                                            val_labels=demo_dir / "val_labels"), work / "dataset")
    num_classes = len(summary.info["classes"])
    baseline = majority_class_mean_iu(summary.path, num_classes)

    solver = load_solver("fcn_tiny")
    solver.max_iter, solver.test_interval, solver.snapshot = 1_000_000, args.test_interval, 0
    solver.test_iter[:] = [demo["val_count"]]
    net = bind_data_sources(load_network("fcn_tiny", num_classes), summary.path, batch_size=4)
    for layer in net.layer:
        if layer.type == "Data" and layer.include[0].phase == caffe_pb2.TEST:
            layer.data_param.batch_size = 1
    started = time.monotonic()
    budget = args.minutes * 60
    curve: list[tuple[float, int, float]] = []

    def record(line: dict) -> None:
        if line.get("phase") == "val" and line.get("mean_iu") is not None:
            elapsed, iteration, mean_iu = time.monotonic() - started, line["iteration"], line["mean_iu"]
            curve.append((elapsed, iteration, mean_iu))
            print(f"{elapsed:7.1f} s  iteration {iteration:5d}  val mean IU {mean_iu:.3f}", flush=True)

    job_dir = args.out or work / "job"
    job_dir.mkdir(parents=True, exist_ok=True)
    train(TrainConfig(solver=solver, net=net, device="cpu"), job_dir,
          should_stop=lambda: time.monotonic() - started > budget, progress=record)
    reached = next(((t, it) for t, it, iu in curve if iu >= 0.5), None)
    best = max((iu for _, _, iu in curve), default=float("nan"))
    result = {"minutes": args.minutes, "threads": args.threads, "classes": num_classes,
              "train_images": demo["count"], "val_images": demo["val_count"],
              "image_size": [demo["width"], demo["height"]], "baseline_majority_mean_iu": round(baseline, 4),
              "best_val_mean_iu": round(best, 4), "best_over_baseline": round(best / baseline, 2),
              "seconds_to_mean_iu_0.5": None if reached is None else round(reached[0], 1),
              "iteration_at_mean_iu_0.5": None if reached is None else reached[1]}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
