"""Training data path throughput against the read and decode it cannot avoid.

For the demo set (160x120 scenes, as `digitslite demo` writes them) and a 480x360 PNG set, both
built by `create_dataset` (png records): raw = reading and decoding the same records in one
process (LMDB read, Datum parse, PIL decode of feature and label: `SegmentationLmdbDataset.record`,
nothing else), and the images/s a training stream (`DatasetStream`, the path `digitslite train`
uses, with Caffe's transform: mean image, mirror, scale 1/255) delivers to --device with
--workers workers (they send uint8 records; the transform runs in this process, on the device).
A plain torch DataLoader over the dataset (float32 samples made by the workers, the path before
streams) runs in the same invocation for comparison. Each repeat measures raw, stream and plain
one after the other, and its ratio stream / (raw x workers) uses that repeat's raw: other load
changes from second to second on a shared machine. Beside the rates, the CPU time per image of
raw and of the stream (this process and its workers together, from /proc): their quotient is
about what the stream reaches when the cores are its own, whatever the load.
Goal: stream >= 0.8 of raw x workers.

    .venv/bin/python benchmarks/loader.py                  # CPU, 2 workers
    .venv/bin/python benchmarks/loader.py --device cuda    # dataset to GPU
"""
import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from digitslite.datasets import DatasetOptions, create_dataset
from digitslite.datasets.demo import write_demo
from digitslite.engine.data import (
    BoundDataLayer,
    SegmentationLmdbDataset,
    SegmentationTransform,
    load_mean,
)
from digitslite.engine.feeds import DatasetStream
from digitslite.engine.host_memory import retain_freed_memory

SETS = {"demo 160x120": (160, 120), "png 480x360": (480, 360)}


def _cpu_seconds() -> float:
    """CPU time of this process and of its live children (a stream's workers), from /proc (Linux)."""
    me, total = os.getpid(), time.process_time()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue    # ended meanwhile
        if int(fields[1]) == me:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class Window:
    """The timed part of a run: images/s and the CPU ms per image spent meanwhile, workers included."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), _cpu_seconds()

    def rates(self, images: int) -> tuple[float, float]:
        cpu, wall = _cpu_seconds(), time.perf_counter()
        return images / (wall - self.wall), (cpu - self.cpu) / images * 1e3


def raw_rate(dataset: Path) -> tuple[float, float]:
    """Records/s and CPU ms per record of reading and decoding them in this process, nothing else."""
    records = SegmentationLmdbDataset(dataset / "train_db")
    window = Window()
    for index in range(len(records)):
        records.record(index)
    return window.rates(len(records))


def _bound(dataset: Path, batch: int) -> BoundDataLayer:
    transform = SegmentationTransform(mirror=True, mean=load_mean(dataset / "mean.binaryproto", "image"),
                                      scale=1 / 255)
    records = SegmentationLmdbDataset(dataset / "train_db", transform)
    return BoundDataLayer(("data",), records, batch, {"data": "image", "label": "label"})


def stream_rate(dataset: Path, workers: int, batch: int, device: torch.device,
                epochs: int) -> tuple[float, float]:
    """Images/s a training stream delivers onto `device` and its CPU ms per image, after one batch
    (start-up is not counted)."""
    bound = _bound(dataset, batch)
    batches = epochs * len(bound.dataset) // batch
    stream = DatasetStream([bound], seed=0, workers=workers, pin_memory=device.type == "cuda", device=device)
    try:
        stream.next()
        window = Window()
        for _ in range(batches):
            images = stream.next()["data"]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        del images
        return window.rates(batches * batch)
    finally:
        stream.close()


def _collate(samples: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([image for image, _ in samples]), torch.stack([label for _, label in samples])


def previous_rate(dataset: Path, workers: int, batch: int, device: torch.device,
                  epochs: int) -> tuple[float, float]:
    """Images/s and CPU ms per image of the previous path: float32 samples across processes, moved
    to `device` after."""
    records = _bound(dataset, batch).dataset
    loader = DataLoader(records, batch_size=batch, num_workers=workers, collate_fn=_collate,
                        persistent_workers=workers > 0)
    iterator = iter(loader)
    next(iterator)
    count, window = 0, Window()
    for _ in range(epochs):
        for images, _ in iterator:
            images.to(device)
            count += images.shape[0]
        iterator = iter(loader)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return window.rates(count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--count", type=int, default=400, help="images per set")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3, help="passes a timed window makes over a set")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of: {', '.join(SETS)}")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(1)    # the training process shares the cores with the workers
    retain_freed_memory()       # as a CPU stream does in the training process: raw alike in every repeat
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.sets.split(","):
            width, height = SETS[name]
            root = Path(scratch) / name.split()[0]
            write_demo(root / "folders", count=args.count, val_count=0, width=width, height=height, seed=0)
            folders = root / "folders"
            create_dataset(DatasetOptions(images=folders / "images", labels=folders / "labels",
                                          classes=folders / "classes.txt", val_percent=0, seed=0,
                                          workers=args.workers), root / "db")
            runs = (root / "db", args.workers, args.batch, device, args.epochs)
            repeats = []
            for _ in range(args.repeat):
                raw, raw_cpu = raw_rate(root / "db")
                ours, ours_cpu = stream_rate(*runs)
                before, before_cpu = previous_rate(*runs)
                load = os.getloadavg()[0]
                repeats.append({"load": load, "raw_decode": raw, "stream": ours, "previous": before,
                                "ratio": ours / (raw * args.workers),
                                "previous_ratio": before / (raw * args.workers),
                                "cpu_ms": {"raw": raw_cpu, "stream": ours_cpu, "previous": before_cpu}})
                print(f"{name}, load {load:.1f}: raw {raw:.1f} images/s ({raw_cpu:.2f} CPU ms each); "
                      f"stream to {device} with {args.workers} workers {ours:.1f} images/s "
                      f"({ours_cpu:.2f} CPU ms) = {repeats[-1]['ratio']:.2f} of raw x {args.workers}; "
                      f"previous float32 path {before:.1f} ({before_cpu:.2f} CPU ms) = "
                      f"{repeats[-1]['previous_ratio']:.2f}", flush=True)
            result = {"set": name, "workers": args.workers, "device": str(device), "repeats": repeats}
            for key in ("raw_decode", "stream", "previous", "ratio", "previous_ratio"):
                result[key] = statistics.median(repeat[key] for repeat in repeats)
            result["cpu_ratio"] = statistics.median(repeat["cpu_ms"]["raw"] / repeat["cpu_ms"]["stream"]
                                                    for repeat in repeats)
            results.append(result)
            print(f"{name}: median ratio {result['ratio']:.2f} of raw x {args.workers} (goal >= 0.8), "
                  f"previous path {result['previous_ratio']:.2f}; CPU per image raw / stream "
                  f"{result['cpu_ratio']:.2f}", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
