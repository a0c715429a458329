"""Data-parallel scaling: training images per second on 1 rank and on 2 ranks.

fcn_tiny (network_defs) trains on procedurally drawn street scenes (digitslite.datasets.demo)
written once to a temporary LMDB dataset. The batch is per rank, so 2 ranks train with the doubled
effective batch: the ratio is the throughput gained by adding a rank, ideally 2. Each run reports
the images/s that training logs (all ranks together; test passes and snapshots excluded); the
first report (warm-up) is dropped and the median of the rest is printed, with the wall time of the
whole run (process start-up and rendezvous included).

    .venv/bin/python benchmarks/ddp_scaling.py                  # CPU: 1 and 2 ranks (gloo)
    .venv/bin/python benchmarks/ddp_scaling.py --device cuda    # GPUs: 1 rank, and 2 with 2 GPUs (NCCL)

On the CPU every rank runs --threads threads (default 1), so the ratio measures how training
scales with the cores that ranks add. (A single process left at its default of one thread per
core also collapses when other work shares the machine: OpenMP threads wait for each other.)
"""
import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from digitslite.datasets.demo import CLASSES, render_scene
from digitslite.datasets.lmdb_writer import LmdbWriter
from digitslite.datasets.records import feature_datum, label_datum
from digitslite.engine.dispatch import train
from digitslite.engine.train import TrainConfig
from digitslite.networks import load_network, load_solver

DISPLAY = 5


def write_scenes(root: Path, count: int, size: int) -> Path:
    """A DIGITS-layout dataset of `count` training scenes of size x size pixels."""
    rng = np.random.default_rng(0)
    features, labels = LmdbWriter(root / "train_db" / "features"), LmdbWriter(root / "train_db" / "labels")
    for index in range(count):
        photo, label = render_scene(rng, size, size)
        key = f"{index:09d}".encode()
        features.put(key, feature_datum(Image.fromarray(photo), "png"))
        labels.put(key, label_datum(label))
    features.close()
    labels.close()
    return root


def measure(dataset: Path, job: Path, device: str, ranks: int, batch: int,
            iterations: int) -> tuple[float, float]:
    """(median images/s after the warm-up report, wall seconds of the whole run)."""
    net = load_network("fcn_tiny", len(CLASSES))
    for layer in net.layer:
        if layer.type == "Data":
            layer.data_param.batch_size = batch
    solver = load_solver("fcn_tiny")
    solver.max_iter, solver.display, solver.snapshot, solver.test_interval = iterations, DISPLAY, 0, 0
    solver.snapshot_after_train = False
    del solver.test_iter[:]
    rates: list[float] = []

    def collect(record: dict) -> None:
        if record["phase"] == "train" and record.get("images_per_s"):
            rates.append(record["images_per_s"])

    started = time.perf_counter()
    train(TrainConfig(solver=solver, net=net, device=device, dataset_root=dataset, ranks=ranks), job,
          progress=collect)
    return statistics.median(rates[1:]), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch", type=int, default=4, help="images per rank per iteration")
    parser.add_argument("--size", type=int, default=128, help="scene width and height in pixels")
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per rank")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)                    # the 1-rank run, in this process
    os.environ["OMP_NUM_THREADS"] = str(args.threads)      # the ranks the launcher starts
    rank_counts = [1, 2] if args.device == "cpu" or torch.cuda.device_count() >= 2 else [1]
    with tempfile.TemporaryDirectory(prefix="ddp-scaling-") as folder:
        root = Path(folder)
        dataset = write_scenes(root / "dataset", 64, args.size)
        print(f"fcn_tiny, {args.size}x{args.size} scenes, batch {args.batch} per rank, {args.iterations} "
              f"iterations, device {args.device}, {args.threads} CPU thread(s) per rank, "
              f"{os.cpu_count()} cores, torch {torch.__version__}")
        results = {}
        for ranks in rank_counts:
            results[ranks] = measure(dataset, root / f"ranks{ranks}", args.device, ranks, args.batch,
                                     args.iterations)
            rate, wall = results[ranks]
            print(f"  {ranks} rank(s): {rate:8.1f} images/s   (wall {wall:5.1f} s with start-up)")
        if len(results) == 2:
            print(f"  ratio 2 ranks / 1 rank: {results[2][0] / results[1][0]:.2f}")


if __name__ == "__main__":
    main()
