"""The streams of a net's inputs: a caller's feed, its Data layers' LMDB datasets, and the choice
between those and its HDF5Data layers (digitslite.engine.hdf5_stream). Every one keeps the
data-order contract of digitslite.engine.batch_stream.
"""
import collections
import itertools
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from digitslite.caffe import caffe_pb2
from digitslite.caffe.pythonlayers import as_data_layer
from digitslite.datasets.records import Allocate
from digitslite.engine.batch_stream import Batch, BatchStream, Shard
from digitslite.engine.host_memory import retain_freed_memory
from digitslite.engine.slot_ring import SlotRing
from digitslite.errors import UserError

_PREFETCH = 2                           # items each worker has in flight (the DataLoader's prefetch_factor)
_ITEM_BYTES, _ITEM_BATCHES = 1 << 22, 8     # see _per_item


class FeedStream(BatchStream):
    """Batches from a caller's iterable, cycled; the unit of `position` is one batch. A sequence is
    indexed directly; another iterable is read again from the start when exhausted."""

    def __init__(self, feed: Iterable[Mapping[str, torch.Tensor]], name: str, shard: Shard = Shard()) -> None:
        self.feed, self.name, self.shard = feed, name, shard
        self.indexed = isinstance(feed, Sequence)
        if self.indexed and not len(feed):
            raise UserError(f"the {name} feed holds no batches; give at least one")
        self.base, self.rounds = 0, 0
        self._iterator: Iterator | None = None
        self._read = 0          # batches taken from _iterator since it was (re)started

    @property
    def position(self) -> int:
        return self.base + self.rounds * self.shard.world_size

    def next(self) -> Batch:
        index = self.position + self.shard.rank
        self.rounds += 1
        if self.indexed:
            return dict(self.feed[index % len(self.feed)])
        if self._iterator is None or self._read > index:
            self._iterator, self._read = None, 0
        batch = None
        while self._read <= index:
            batch = self._next_from_iterator()
            self._read += 1
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
        self.base, self.rounds = position, 0

    def advanced(self, start: int, batches: int) -> int:
        return start + batches


def sample_draws(seed: int, source: int, sample: int) -> random.Random:
    """The generator of a stream's random choices for sample `sample` of source `source`: a function
    of the three alone, so a run's data do not depend on its workers, on how batches are grouped
    or on where it resumed. Python's Mersenne Twister, seeded from their text, starts in 6 us; a
    NumPy Generator took 33 us a sample amid the decoding, 4 % of a 160x120 record's."""
    return random.Random(f"{seed} {source} {sample}")


class _BatchAt(Dataset):
    """Item (j, (b_j, b_j+1, ...)) is batches j, j+1, ... of a loader, where b = (s_0, s_1, ...) says
    at which sample each source f starts the batch (records wrap around); each batch as the LMDB
    holds it: per source, the uint8 images, the labels and each sample's drawn Placement. The
    training process transforms it (`_finish`). Several batches to an item when they are small
    (`_per_item`): a hand-over has a fixed cost.

    uint8 crosses processes, not float32: a quarter of the bytes. On the CPU a worker decodes batch
    j into slot j of a shared-memory ring (digitslite.engine.slot_ring) when there is one, and sends
    only the records' places; otherwise they go through the DataLoader's pipe as NumPy arrays,
    which `_received` tells apart. For an accelerator they become tensors, which the DataLoader pins.
    """

    def __init__(self, bound: Sequence, seed: int, ring: SlotRing | None = None) -> None:
        self.bound, self.seed, self.ring = list(bound), seed, ring

    def __getitem__(self, item: tuple[int, tuple[tuple[int, ...], ...]]) -> list[tuple]:
        """Per batch: (its slot, its records' places), or (None, its records)."""
        first, batches = item
        return [self._sent(first + index, starts) for index, starts in enumerate(batches)]

    def _sent(self, sequence: int, starts: tuple[int, ...]) -> tuple[int | None, list[tuple]]:
        """Batch `sequence` decoded into its slot of the ring: (the slot, the records' places); or,
        without a ring, with the slot still taken or too small, (None, the records)."""
        writer = self.ring.writer(sequence) if self.ring is not None else None
        raw = self._batch(starts, writer.allocate if writer is not None else None)
        if writer is None:
            return None, raw
        sealed = writer.seal([array for images, labels, _ in raw for array in (*images, *labels)])
        if sealed is None:      # the records leave the slot, which stays free: copies go through the pipe
            return None, [(tuple(map(np.array, images)), tuple(map(np.array, labels)), placements)
                          for images, labels, placements in raw]
        slot, places = sealed
        places = iter(places)
        return slot, [(tuple(next(places) for _ in images), tuple(next(places) for _ in labels), placements)
                      for images, labels, placements in raw]

    def _batch(self, starts: tuple[int, ...], allocate: Allocate | None) -> list[tuple]:
        raw = []
        for source, (feed, start) in enumerate(zip(self.bound, starts, strict=True)):
            dataset = feed.dataset
            samples = [dataset.raw_sample(sample % len(dataset), sample_draws(self.seed, source, sample),
                                          allocate) for sample in range(start, start + feed.batch_size)]
            raw.append(tuple(zip(*samples, strict=True)))
        return raw


def _received(item: tuple[int | None, list[tuple]], ring: SlotRing | None) -> list[tuple]:
    """The records of a batch, as views of its slot if it came through the ring."""
    slot, raw = item
    if slot is None:
        return raw
    return [(ring.take(images), ring.take(labels), placements) for images, labels, placements in raw]


def _as_is(item: tuple) -> tuple:
    """The DataLoader's collate_fn for the CPU: items cross as they are (see _BatchAt)."""
    return item


def _as_tensors(item: list[tuple[None, list[tuple]]]) -> list[tuple[None, list[tuple]]]:
    """The collate_fn for an accelerator: records as tensors, which the DataLoader can pin."""
    return [(slot, [(_stacked(images), _stacked(labels), placements) for images, labels, placements in raw])
            for slot, raw in item]


def _stacked(arrays: Sequence[np.ndarray]) -> torch.Tensor | list[torch.Tensor]:
    """One tensor when every array has the same shape (one block to pass and pin), else one each."""
    if len({array.shape for array in arrays}) == 1:
        return torch.from_numpy(np.stack(arrays))
    return [torch.from_numpy(np.array(array, order="C")) for array in arrays]


def _finish(raw: list[tuple], bound: Sequence, device: torch.device, means: dict) -> Batch:
    """A worker's raw batch transformed on `device`: float32 N x C x H x W images and Caffe's float
    N x 1 x H x W label blob (N x C x H x W for labels of C channels); `means` caches each source's
    mean on the device."""
    batch: Batch = {}
    for source, (feed, (images, labels, placements)) in enumerate(zip(bound, raw, strict=True)):
        if device.type == "cpu":
            _give_tops(feed, *_placed(feed, images, labels, placements), batch)
        else:
            _give_tops(feed, *_applied(feed, images, labels, placements, device, means, source), batch)
    return batch


def _placed(feed, images: Sequence, labels: Sequence,
            placements: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
    """On the CPU, the records transformed by NumPy straight into their slots of the batch."""
    transform = feed.dataset.transform_or_identity
    shape = _one_size([transform.output_shape(tuple(image.shape), placement)
                       for image, placement in zip(images, placements, strict=True)], feed.layer_names[0])
    label_shape = tuple(labels[0].shape[:-2]) + shape[1:]     # H x W, or C x H x W (chroma)
    image_batch = torch.empty((len(placements), *shape))
    blob_shape = label_shape if len(label_shape) == 3 else (1, *label_shape)    # Caffe's N x 1 x H x W
    label_batch = torch.empty((len(placements), *blob_shape))
    transform.place_all([np.asarray(image) for image in images], [np.asarray(label) for label in labels],
                        placements, image_batch.numpy(), label_batch.numpy().reshape(-1, *label_shape))
    return image_batch, label_batch


def _applied(feed, images: Sequence, labels: Sequence, placements: Sequence, device: torch.device,
             means: dict, source: int) -> tuple[torch.Tensor, torch.Tensor]:
    """On an accelerator, each record moved there and transformed by torch."""
    transform = feed.dataset.transform_or_identity
    pairs = []
    for image, label, placement in zip(images, labels, placements, strict=True):
        image = torch.as_tensor(image).to(device, non_blocking=True)
        label = torch.as_tensor(label).to(device, non_blocking=True)
        key = (source, tuple(image.shape))
        if key not in means:
            means[key] = transform.mean_tensor(tuple(image.shape), device)
        pairs.append(transform.apply(image, label, placement, means[key]))
    _one_size([tuple(image.shape) for image, _ in pairs], feed.layer_names[0])
    labels = torch.stack([label for _, label in pairs]).float()
    return torch.stack([image for image, _ in pairs]), labels.unsqueeze(1) if labels.dim() == 3 else labels


def _per_item(batch_bytes: int) -> int:
    """Batches to an item of the DataLoader: enough for _ITEM_BYTES, at most _ITEM_BATCHES. A
    hand-over costs about 0.15 ms of CPU time in all, 5 % of a batch of four 160x120 records: those
    travel eight batches to an item, 480x360 ones one."""
    return max(1, min(_ITEM_BATCHES, _ITEM_BYTES // batch_bytes))


def _worker_started(_: int) -> None:
    """A worker keeps the memory it frees: each record's decode reuses the previous one's pages."""
    retain_freed_memory()


def _one_size(sizes: Sequence[tuple[int, ...]], layer: str) -> tuple[int, ...]:
    """The one size of a batch's transformed records; different sizes cannot form a batch."""
    if len(set(sizes)) > 1:
        raise UserError(f"layer '{layer}': one batch holds records of sizes {sorted(set(sizes))[:2]}; use "
                        "batch_size 1 or a crop_size so that every record has one size")
    return sizes[0]


def _give_tops(feed, images: torch.Tensor, labels: torch.Tensor, batch: Batch) -> None:
    """Each top of the feed's layers gets the images or the label blob."""
    for top, role in feed.tops.items():
        batch[top] = images if role == "image" else labels


class _RankBatches(Sampler):
    """This rank's batches, one round after another, forever, `per_item` to an item (_BatchAt)."""

    def __init__(self, base: int, sizes: Sequence[int], shard: Shard, per_item: int = 1) -> None:
        self.base, self.sizes, self.shard, self.per_item = base, list(sizes), shard, per_item

    def __iter__(self) -> Iterator[tuple[int, tuple[tuple[int, ...], ...]]]:
        """(j, the start samples of batches j, j+1, ... of this rank from `base` on)."""
        for first in itertools.count(step=self.per_item):
            yield first, tuple(self._starts(sequence) for sequence in range(first, first + self.per_item))

    def _starts(self, sequence: int) -> tuple[int, ...]:
        batch = self.shard.rank + sequence * self.shard.world_size
        return tuple(self.base * size // self.sizes[0] + batch * size for size in self.sizes)


class DatasetStream(BatchStream):
    """Batches of a net's Data layers read from their LMDB datasets, optionally by worker processes
    that send uint8 records; the transform runs in this process, on `device` (_BatchAt, _finish).
    The unit of `position` is one sample of the first source."""

    def __init__(self, bound: Sequence, seed: int, workers: int = 0, pin_memory: bool = False,
                 shard: Shard = Shard(), device: torch.device | None = None) -> None:
        self.bound = list(bound)
        self.device = device if device is not None else torch.device("cpu")
        self._means: dict = {}
        self.sizes = [feed.batch_size for feed in bound]
        self.seed, self.shard = seed, shard
        self.workers, self.pin_memory = workers, pin_memory
        self.base, self.rounds = 0, 0
        self._iterator: Iterator[list] | None = None
        self._pending: collections.deque = collections.deque()    # received batches not yet taken
        self._ring: SlotRing | None = None

    @property
    def position(self) -> int:
        return self.base + self.rounds * self.shard.world_size * self.sizes[0]

    def _loader(self) -> Iterator[list]:
        on_cpu, per_item = self.device.type == "cpu", 1
        if on_cpu:
            retain_freed_memory()   # each batch's float32 tensors reuse the previous one's pages
        if on_cpu and self.workers:
            batch_bytes = self._batch_bytes()
            per_item = _per_item(batch_bytes)
            # a new ring for new workers: those of a closed loader may still be writing the old one
            self._ring = SlotRing.for_loader(self.workers, _PREFETCH, per_item, batch_bytes)
        batches = _RankBatches(self.base, self.sizes, self.shard, per_item)
        loader = DataLoader(_BatchAt(self.bound, self.seed, self._ring), batch_size=None, sampler=batches,
                            num_workers=self.workers, collate_fn=_as_is if on_cpu else _as_tensors,
                            pin_memory=self.pin_memory, prefetch_factor=_PREFETCH if self.workers else None,
                            worker_init_fn=_worker_started,
                            # its own generator: a DataLoader draws a seed, which must not move the
                            # global RNG (dropout masks) depending on when a stream is (re)opened
                            generator=torch.Generator().manual_seed(self.seed))
        return iter(loader)

    def next(self) -> Batch:
        if not self._pending:
            if self._iterator is None:
                self._iterator = self._loader()
            self._pending.extend(next(self._iterator))
        self.rounds += 1
        item = self._pending.popleft()
        batch = _finish(_received(item, self._ring), self.bound, self.device, self._means)
        if item[0] is not None:
            self._ring.release(item[0])
        return batch

    def _batch_bytes(self) -> int:
        """The bytes of one batch of records like each source's first (a slot of the ring)."""
        return sum(feed.batch_size * SlotRing.room(feed.dataset.record(0)) for feed in self.bound)

    def seek(self, position: int) -> None:
        if position == self.position:
            return          # already there: keep the prefetching workers
        self.close()
        self.base, self.rounds = position, 0

    def advanced(self, start: int, batches: int) -> int:
        return start + batches * self.sizes[0]

    def close(self) -> None:
        self._iterator = self._ring = None
        self._pending.clear()


def data_layer_stream(layers: Iterable[caffe_pb2.LayerParameter], phase: int, dataset_root: Path | None,
                      seed: int, workers: int = 0, pin_memory: bool = False,
                      shard: Shard = Shard(), device: torch.device | None = None) -> BatchStream:
    """Bind a filtered net's Data layers (and the FCN repository's Python data layers, as Data layers:
    caffe.pythonlayers) to their LMDBs (digitslite.engine.data) as one stream, or its HDF5Data layers
    to their files (digitslite.engine.hdf5_stream). LMDB batches are transformed on `device`."""
    layers = [as_data_layer(layer) if layer.type == "Python" else layer for layer in layers]
    if layers and all(layer.type == "HDF5Data" for layer in layers):
        from digitslite.engine.hdf5_stream import HDF5Stream  # here: h5py only for HDF5 nets

        batch_less = [layer.name for layer in layers if layer.hdf5_data_param.batch_size < 1]
        if batch_less:
            raise UserError(f"layer '{batch_less[0]}' (HDF5Data): batch_size is not set; give "
                            "hdf5_data_param { batch_size: N }")
        return HDF5Stream(layers, dataset_root, seed, shard)
    unreadable = [layer for layer in layers if layer.type != "Data"]
    if unreadable:
        layer = unreadable[0]
        if layer.type == "HDF5Data":
            raise UserError(f"layer '{layer.name}' (HDF5Data) shares a phase with Data layers; digitslite "
                            "reads one kind of data source per net: use HDF5Data or Data layers only")
        raise UserError(f"layer '{layer.name}' ({layer.type}) is a data source digitslite cannot read; "
                        "replace it with Data layers reading an LMDB dataset (digitslite dataset create), "
                        "or give batches for its tops")
    from digitslite.engine.data import bind_data_layers  # here: lmdb is imported only to read datasets

    bound = bind_data_layers(layers, phase, dataset_root)
    return DatasetStream(bound, seed, workers, pin_memory, shard, device)
