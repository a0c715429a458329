"""Endless, resumable streams of input batches for a net: {top name: tensor} per batch.

Caffe's Data layer reads records in key order and wraps around; a test net's reader continues
where the previous test pass stopped. A stream here does the same and counts the batches it has
handed out (`position`), which a snapshot saves so a resumed run reads exactly the batches the
uninterrupted run would have read. Batches from LMDB datasets draw their random crop/mirror from
a generator seeded by (seed, position), so they are a pure function of the position: resuming
needs no saved generator state, and DataLoader workers cannot change the result.
"""
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from digitslite.caffe import caffe_pb2
from digitslite.errors import UserError

Batch = dict[str, torch.Tensor]


class BatchStream:
    """Batches numbered from 0; `position` is how many have been taken."""

    position: int = 0

    def next(self) -> Batch:
        raise NotImplementedError

    def seek(self, position: int) -> None:
        """Continue so that the next batch is number `position`."""
        raise NotImplementedError

    def close(self) -> None:
        """Release worker processes, if any."""


class FeedStream(BatchStream):
    """Batches from a caller's iterable, cycled: indexed directly when it is a sequence, else iterated
    again from the start when exhausted (seeking then re-reads it)."""

    def __init__(self, feed: Iterable[Mapping[str, torch.Tensor]], name: str) -> None:
        self.feed, self.name = feed, name
        self.indexed = isinstance(feed, Sequence)
        if self.indexed and not len(feed):
            raise UserError(f"the {name} feed holds no batches; give at least one")
        self.position = 0
        self._iterator: Iterator | None = None

    def next(self) -> Batch:
        batch = self.feed[self.position % len(self.feed)] if self.indexed else self._next_from_iterator()
        self.position += 1
        return dict(batch)

    def _next_from_iterator(self):
        for restarted in (False, True):
            if self._iterator is None or restarted:
                self._iterator = iter(self.feed)
            try:
                return next(self._iterator)
            except StopIteration:
                continue
        raise UserError(f"the {self.name} feed gave no batches; give a re-iterable collection of batches")

    def seek(self, position: int) -> None:
        self._iterator = None
        self.position = 0
        if self.indexed:
            self.position = position
            return
        for _ in range(position):
            self.next()


class _BatchAt(Dataset):
    """Item p is the whole batch number p of the bound Data layers (records in key order, wrapping)."""

    def __init__(self, bound: Sequence, seed: int) -> None:
        self.bound, self.seed = list(bound), seed

    def __getitem__(self, position: int) -> Batch:
        rng = np.random.default_rng([self.seed, position])
        batch: Batch = {}
        for feed in self.bound:
            dataset = feed.dataset
            pairs = [self._item(dataset, (position * feed.batch_size + k) % len(dataset), rng)
                     for k in range(feed.batch_size)]
            images, labels = _stack(pairs, feed.layer_names[0])
            for top, role in feed.tops.items():
                batch[top] = images if role == "image" else labels
        return batch

    @staticmethod
    def _item(dataset, index: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The dataset's record through its transform, with our generator instead of its own."""
        image, label = dataset.record(index)
        if dataset.transform is not None:
            image, label = dataset.transform(image, label, rng)
        return (torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
                torch.from_numpy(np.asarray(label, dtype=np.int64)))


def _stack(pairs: list[tuple[torch.Tensor, torch.Tensor]], layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """N×C×H×W images and Caffe's float N×1×H×W label blob."""
    sizes = {tuple(image.shape) for image, _ in pairs}
    if len(sizes) > 1:
        raise UserError(f"layer '{layer}': one batch holds records of sizes {sorted(sizes)[:2]}; use "
                        "batch_size 1 or a crop_size so that every record has one size")
    images = torch.stack([image for image, _ in pairs])
    labels = torch.stack([label for _, label in pairs]).unsqueeze(1).float()
    return images, labels


class _From(Sampler):
    """Positions start, start + 1, ... forever."""

    def __init__(self, start: int) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        position = self.start
        while True:
            yield position
            position += 1


class DatasetStream(BatchStream):
    """Batches of a net's Data layers read from their LMDB datasets, optionally by worker processes."""

    def __init__(self, bound: Sequence, seed: int, workers: int = 0, pin_memory: bool = False) -> None:
        self.items = _BatchAt(bound, seed)
        self.seed = seed
        self.workers, self.pin_memory = workers, pin_memory
        self.position = 0
        self._iterator: Iterator | None = None

    def _loader(self) -> Iterator[Batch]:
        loader = DataLoader(self.items, batch_size=None, sampler=_From(self.position),
                            num_workers=self.workers, pin_memory=self.pin_memory,
                            prefetch_factor=2 if self.workers else None,
                            # its own generator: a DataLoader draws a seed, which must not move the
                            # global RNG (dropout masks) depending on when a stream is (re)opened
                            generator=torch.Generator().manual_seed(self.seed))
        return iter(loader)

    def next(self) -> Batch:
        if self._iterator is None:
            self._iterator = self._loader()
        self.position += 1
        return next(self._iterator)

    def seek(self, position: int) -> None:
        self.close()
        self.position = position

    def close(self) -> None:
        self._iterator = None


def data_layer_stream(layers: Iterable[caffe_pb2.LayerParameter], phase: int, dataset_root: Path | None,
                      seed: int, workers: int = 0, pin_memory: bool = False) -> DatasetStream:
    """Bind a filtered net's Data layers to their LMDBs (digitslite.engine.data) as one stream."""
    layers = list(layers)
    unreadable = [layer for layer in layers if layer.type != "Data"]
    if unreadable:
        layer = unreadable[0]
        raise UserError(f"layer '{layer.name}' ({layer.type}) is a data source digitslite cannot read; "
                        "replace it with Data layers reading an LMDB dataset (digitslite dataset create), "
                        "or give batches for its tops")
    from digitslite.engine.data import bind_data_layers  # here: lmdb is imported only to read datasets

    bound = bind_data_layers(layers, phase, dataset_root)
    return DatasetStream(bound, seed, workers, pin_memory)

