"""Train/validation split and record order, reproducible from the recorded seed.

Caffe's Data layer reads records in key order without shuffling, so the training records are
written in a seeded random order; validation records keep name order, which is easier to read.
"""
import random

from digitslite.datasets.pairing import Pair


def split_pairs(pairs: list[Pair], val_pairs: list[Pair] | None, val_percent: int,
                seed: int) -> dict[str, list[Pair]]:
    """{"train": [...], "val": [...]}: val from its own folders, else floor(n*percent/100) drawn."""
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    if val_pairs is not None:
        return {"train": shuffled, "val": list(val_pairs)}
    val_count = len(shuffled) * val_percent // 100
    val = sorted(shuffled[:val_count], key=lambda pair: pair.name)
    return {"train": shuffled[val_count:], "val": val}
