"""Dataset creation and loading throughput against the PIL work they cannot avoid.

Creation: images/s of `create_dataset` on 500x375 RGB JPEG scenes with palette label PNGs, against
the decode+encode bound measured in the same run (one process decoding both files and encoding
the feature and label PNGs, nothing else). Goal: ratio = rate / (bound x processes) >= 0.8.
Loading: images/s of SegmentationLmdbDataset (LMDB read, Datum parse, decode, tensors) against the
raw decode of the same stored bytes in one process.

    .venv/bin/python benchmarks/dataset_create.py --count 600 --workers 2
"""
import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from digitslite.datasets import DatasetOptions, create_dataset
from digitslite.datasets.demo import write_demo
from digitslite.datasets.parallel import pool_context
from digitslite.datasets.records import feature_datum, label_datum


def pil_work(pairs: list[tuple[Path, Path]], encoding: str) -> None:
    """The unavoidable PIL work: decode both files, encode both records."""
    for image_path, label_path in pairs:
        with Image.open(image_path) as image, Image.open(label_path) as label:
            image.load()
            label.load()
            feature_datum(image.convert("RGB"), encoding)
            label_datum(np.asarray(label))


def pil_bound(pairs: list[tuple[Path, Path]], encoding: str) -> float:
    """Pairs/s of the PIL work in one process."""
    start = time.perf_counter()
    pil_work(pairs, encoding)
    return len(pairs) / (time.perf_counter() - start)


def parallel_pil_bound(pairs: list[tuple[Path, Path]], encoding: str, processes: int) -> float:
    """Pairs/s of the PIL work split over `processes` processes running at once: what the machine
    can really give right now (on a shared machine, other load makes this less than bound x N)."""
    slices = [pairs[index::processes] for index in range(processes)]
    with pool_context("digitslite.datasets.encoder").Pool(processes) as pool:  # as create_dataset's workers
        pool.map(abs, range(processes))  # start the processes before timing
        start = time.perf_counter()
        pool.starmap(pil_work, [(part, encoding) for part in slices], chunksize=1)
        return len(pairs) / (time.perf_counter() - start)


def creation_rate(demo: Path, out: Path, workers: int, encoding: str) -> tuple[float, float]:
    """(pairs/s, CPU seconds this process spent per pair): with workers > 1 the latter is the
    parent's share (pairing, LMDB writes), which bounds how far the worker pool can scale."""
    options = DatasetOptions(images=demo / "images", labels=demo / "labels", classes=demo / "classes.txt",
                             val_percent=0, encoding=encoding, seed=0, workers=workers)
    start, start_cpu = time.perf_counter(), time.process_time()
    count = create_dataset(options, out).info["counts"]["train"]
    return count / (time.perf_counter() - start), (time.process_time() - start_cpu) / count


def raw_decode_rate(dataset: Path) -> float:
    """Records/s of decoding the stored feature and label bytes only (already in memory)."""
    import lmdb

    from digitslite.caffe import caffe_pb2

    blobs = []
    for name in ("features", "labels"):
        env = lmdb.open(str(dataset / "train_db" / name), readonly=True, lock=False)
        with env.begin() as txn:
            blobs.append([caffe_pb2.Datum.FromString(value).data for _, value in txn.cursor()])
        env.close()
    start = time.perf_counter()
    for feature, label in zip(*blobs, strict=True):
        for data in (feature, label):
            with Image.open(io.BytesIO(data)) as image:
                np.asarray(image)
    return len(blobs[0]) / (time.perf_counter() - start)


def loader_rate(dataset: Path, workers: int) -> float:
    """Records/s through the torch dataset (num_workers=0) or a DataLoader with `workers` processes
    (timed on a second epoch, so worker start-up is not counted)."""
    from torch.utils.data import DataLoader

    from digitslite.engine.data import SegmentationLmdbDataset

    records = SegmentationLmdbDataset(dataset / "train_db")
    if workers == 0:
        start = time.perf_counter()
        for index in range(len(records)):
            records[index]
        return len(records) / (time.perf_counter() - start)
    loader = DataLoader(records, batch_size=1, num_workers=workers, persistent_workers=True)
    for _ in loader:
        pass
    start = time.perf_counter()
    for _ in loader:
        pass
    return len(records) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=600,
                        help="pairs to create (real datasets have thousands; few pairs overweight the "
                             "fixed start-up of the worker pool)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="encoder processes")
    parser.add_argument("--encoding", default="png", choices=("png", "jpg", "none"))
    parser.add_argument("--repeat", type=int, default=2, help="interleaved repeats; the best of each counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        write_demo(root / "demo", count=args.count, val_count=0, width=500, height=375, seed=0)
        pairs = [(path, root / "demo" / "labels" / f"{path.stem}.png")
                 for path in sorted((root / "demo" / "images").glob("*.jpg"))]
        pil_bound(pairs[:10], args.encoding)  # warm the page cache and the codecs
        # Interleaved repeats, best of each: other load on the machine only ever slows a run down.
        demo, bound, one, many, parent_cpu, capacity = root / "demo", 0.0, 0.0, 0.0, float("inf"), 0.0
        for attempt in range(args.repeat):
            bound = max(bound, pil_bound(pairs, args.encoding))
            capacity = max(capacity, parallel_pil_bound(pairs, args.encoding, args.workers))
            one = max(one, creation_rate(demo, root / f"one{attempt}", 1, args.encoding)[0])
            rate, cpu = creation_rate(demo, root / f"many{attempt}", args.workers, args.encoding)
            many, parent_cpu = max(many, rate), min(parent_cpu, cpu)
        print(f"creation ({args.count} pairs of 500x375, encoding {args.encoding}, {os.cpu_count()} CPUs)")
        print(f"  PIL decode+encode bound, 1 process : {bound:8.1f} images/s")
        print(f"  create_dataset, 1 worker           : {one:8.1f} images/s  ratio {one / bound:.2f}")
        print(f"  create_dataset, {args.workers} workers          : {many:8.1f} images/s  "
              f"ratio {many / (bound * args.workers):.2f} of bound x {args.workers} (goal >= 0.8)")
        print(f"  PIL work in {args.workers} processes at once   : {capacity:8.1f} images/s  "
              f"(create_dataset reaches {many / capacity:.2f} of it)")
        print(f"  parent process CPU with {args.workers} workers  : {1000 * parent_cpu:8.2f} ms/image "
              f"({100 * parent_cpu * bound:.1f}% of one image's PIL work)")
        if args.encoding == "none":
            return
        raw = single = pooled = 0.0
        for _ in range(args.repeat):
            raw = max(raw, raw_decode_rate(root / "one0"))
            single = max(single, loader_rate(root / "one0", 0))
            pooled = max(pooled, loader_rate(root / "one0", args.workers))
        print("loading (features + labels per record)")
        print(f"  raw PIL decode of stored bytes     : {raw:8.1f} images/s")
        print(f"  SegmentationLmdbDataset, 1 process : {single:8.1f} images/s  ratio {single / raw:.2f}")
        print(f"  DataLoader, {args.workers} workers              : {pooled:8.1f} images/s  "
              f"ratio {pooled / (raw * args.workers):.2f} of raw x {args.workers}")


if __name__ == "__main__":
    main()
