"""How the two colorization methods compare with predicting grey, on the colour demo, on the CPU.

The issue's target, within 10 minutes of this script: method 1 (colorize_classes, ab bins,
InfogainLoss, annealed mean) beats "predict grey" (a = b = 0 everywhere) on the raw-accuracy AuC
and on colourfulness, and method 2's tiny variant (colorize_hypercolumns_tiny, chroma regression)
beats it on the mean ab error. The grey baseline is scored by the same code against the same truth
as each method (method 1's truth is the pixels' bin centres, method 2's the stored chroma).

    python benchmarks/colorize_demo.py [--minutes 10] [--threads 2] [--out DIR]
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
from digitslite.datasets.colorize.create import create_colorize
from digitslite.datasets.colorize.demo import write_colour_demo
from digitslite.datasets.colorize.options import ColorizeOptions
from digitslite.engine.colorization.coding import StoredColours, stored_colours
from digitslite.engine.colorization.scores import ColorizationScores
from digitslite.engine.data import SegmentationLmdbDataset
from digitslite.engine.dispatch import train
from digitslite.engine.train import TrainConfig
from digitslite.networks import load_network, load_solver

METHODS = {"classes": ("colorize_classes", "labels"), "regression": ("colorize_hypercolumns_tiny", "chroma")}


def grey_scores(dataset_dir: Path, coding: StoredColours, targets: str) -> dict:
    """The validation scores of painting every pixel grey, against the truth a method is scored on."""
    scores, records = ColorizationScores(), SegmentationLmdbDataset(dataset_dir / "val_db", labels=targets)
    for index in range(len(records)):
        lightness, target = records.record(index)
        target = target[None, None] if target.ndim == 2 else target[None] / 255.0
        plane = coding.lightness(lightness[None].astype(np.float64))
        truth = coding.truth_chroma(target)
        grey = np.zeros_like(truth)
        scores.update(grey, truth, coding.rgb(plane, grey), coding.rgb(plane, truth))
    return scores.summary()


def train_method(method: str, dataset_dir: Path, info: dict, seconds: float, job_dir: Path,
                 test_interval: int) -> list[dict]:
    """Train one method for `seconds` of wall time; its validation records, with the time of each."""
    name, _ = METHODS[method]
    solver = load_solver(name)
    solver.max_iter, solver.test_interval, solver.snapshot, solver.display = 1_000_000, test_interval, 0, 0
    solver.test_iter[:] = [info["counts"]["val"]]
    net = bind_data_sources(load_network(name, len(info["classes"])), dataset_dir, batch_size=4)
    for layer in net.layer:
        if layer.type == "Data" and layer.include[0].phase == caffe_pb2.TEST:
            layer.data_param.batch_size = 1
    started, curve = time.monotonic(), []

    def record(line: dict) -> None:
        if line.get("phase") == "val":
            curve.append({"seconds": round(time.monotonic() - started, 1), **{
                key: line[key] for key in ("iteration", "ab_error", "ab_auc", "psnr", "colourfulness")}})
            print(f"{method:10s} {json.dumps(curve[-1])}", flush=True)

    job_dir.mkdir(parents=True, exist_ok=True)
    train(TrainConfig(solver=solver, net=net, device="cpu", dataset_root=dataset_dir,
                      dataset_info=info), job_dir,
          should_stop=lambda: time.monotonic() - started > seconds, progress=record)
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="for both methods together")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--test-interval", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None, help="keep the dataset and job folders here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = args.out or Path(tempfile.mkdtemp(prefix="colorize_demo."))
    demo = write_colour_demo(work / "demo", count=64, val_count=8, width=64, height=64)
    demo_dir = Path(demo["path"])
    summary = create_colorize(ColorizeOptions(images=demo_dir / "images", val_images=demo_dir / "val_images",
                                              workers=1), work / "dataset")
    info, coding = summary.info, stored_colours(summary.info)
    result = {"minutes": args.minutes, "threads": args.threads, "train_images": info["counts"]["train"],
              "val_images": info["counts"]["val"], "image_size": [demo["width"], demo["height"]],
              "bins": len(info["classes"])}
    for method, (name, targets) in METHODS.items():
        grey = grey_scores(summary.path, coding, targets)
        curve = train_method(method, summary.path, info, args.minutes * 30, work / name, args.test_interval)
        last = curve[-1]
        result[method] = {"network": name, "grey": {key: round(value, 4) for key, value in grey.items()},
                          "last_val": last}
        if method == "classes":
            result[method]["beats_grey"] = {"ab_auc": last["ab_auc"] > grey["ab_auc"],
                                            "colourfulness": last["colourfulness"] > grey["colourfulness"]}
        else:
            result[method]["beats_grey"] = {"ab_error": last["ab_error"] < grey["ab_error"]}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
