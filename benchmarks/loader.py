"""Training data path throughput against the decode it cannot avoid.

For the demo set (160x120 scenes, as `digitslite demo` writes them) and a 480x360 PNG set, both
built by `create_dataset` (png records): the raw PIL decode of the stored feature and label bytes
in one process, and the images/s a training stream (`DatasetStream`, the path `digitslite train`
uses, with Caffe's transform: mean image, mirror, scale 1/255) delivers to --device with
--workers workers: for a GPU the workers send uint8 records and the transform runs on the GPU;
for the CPU the workers transform. A plain torch DataLoader over the dataset (float32 samples,
the path before streams) runs in the same invocation for comparison. Repeats are interleaved;
the best of each counts, since other load only slows a run.
Goal: stream >= 0.8 of raw decode x workers.

    .venv/bin/python benchmarks/loader.py                  # CPU, 2 workers
    .venv/bin/python benchmarks/loader.py --device cuda    # dataset to GPU
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dataset_create import raw_decode_rate

from digitslite.datasets import DatasetOptions, create_dataset
from digitslite.datasets.demo import write_demo
from digitslite.engine.data import (
    BoundDataLayer,
    SegmentationLmdbDataset,
    SegmentationTransform,
    load_mean,
)
from digitslite.engine.feeds import DatasetStream

SETS = {"demo 160x120": (160, 120), "png 480x360": (480, 360)}


def _bound(dataset: Path, batch: int) -> BoundDataLayer:
    transform = SegmentationTransform(mirror=True, mean=load_mean(dataset / "mean.binaryproto", "image"),
                                      scale=1 / 255)
    records = SegmentationLmdbDataset(dataset / "train_db", transform)
    return BoundDataLayer(("data",), records, batch, {"data": "image", "label": "label"})


def stream_rate(dataset: Path, workers: int, batch: int, device: torch.device, epochs: int) -> float:
    """Images/s a training stream delivers onto `device` (after one batch, so start-up is not counted)."""
    bound = _bound(dataset, batch)
    stream = DatasetStream([bound], seed=0, workers=workers, pin_memory=device.type == "cuda", device=device)
    try:
        stream.next()
        batches = epochs * len(bound.dataset) // batch
        start = time.perf_counter()
        for _ in range(batches):
            images = stream.next()["data"]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        del images
        return batches * batch / (time.perf_counter() - start)
    finally:
        stream.close()


def _collate(samples: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([image for image, _ in samples]), torch.stack([label for _, label in samples])


def previous_rate(dataset: Path, workers: int, batch: int, device: torch.device, epochs: int) -> float:
    """Images/s of the previous path: float32 samples across processes, moved to `device` after."""
    records = _bound(dataset, batch).dataset
    loader = DataLoader(records, batch_size=batch, num_workers=workers, collate_fn=_collate,
                        persistent_workers=workers > 0)
    iterator = iter(loader)
    next(iterator)
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for images, _ in iterator:
            images.to(device)
            count += images.shape[0]
        iterator = iter(loader)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--count", type=int, default=200, help="images per set")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of: {', '.join(SETS)}")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(1)    # the training process shares the cores with the workers
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
            raw = ours = before = 0.0
            runs = (root / "db", args.workers, args.batch, device, args.epochs)
            for _ in range(args.repeat):
                raw = max(raw, raw_decode_rate(root / "db"))
                ours = max(ours, stream_rate(*runs))
                before = max(before, previous_rate(*runs))
            result = {"set": name, "workers": args.workers, "device": str(device), "raw_decode": raw,
                      "stream": ours, "previous": before, "ratio": ours / (raw * args.workers),
                      "previous_ratio": before / (raw * args.workers)}
            results.append(result)
            print(f"{name}: raw decode {raw:.1f} images/s (1 process); to {device} with {args.workers} "
                  f"workers: stream {ours:.1f} images/s = {result['ratio']:.2f} of raw x {args.workers} "
                  f"(goal >= 0.8); previous float32 path {before:.1f} = {result['previous_ratio']:.2f}",
                  flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
