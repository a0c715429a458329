"""The streams of a net's inputs: a caller's feed, its Data layers' LMDB datasets, and the choice
between those and its HDF5Data layers (digitslite.engine.hdf5_stream). Every one keeps the
data-order contract of digitslite.engine.batch_stream.
"""
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from digitslite.caffe import caffe_pb2
from digitslite.caffe.pythonlayers import as_data_layer
from digitslite.engine.batch_stream import Batch, BatchStream, Shard
from digitslite.errors import UserError


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


class _BatchAt(Dataset):
    """Item (s_0, s_1, ...) is the batch whose source f starts at sample s_f (records wrap around),
    as the LMDB holds it: per source, uint8 images and labels (stacked when they share a size) and
    each sample's drawn Placement. The training process transforms it (`_finish`).

    uint8 crosses processes, not float32: a quarter of the bytes. For the CPU the arrays go through
    the DataLoader's pipe as they are (`_as_is`), not as tensors in shared memory: each batch would
    take fresh shared pages, and faulting them in cost more than the transform (docs/PERFORMANCE.md,
    training data path). For an accelerator they become tensors, which the DataLoader pins.
    """

    def __init__(self, bound: Sequence, seed: int) -> None:
        self.bound, self.seed = list(bound), seed

    def __getitem__(self, starts: tuple[int, ...]) -> list[tuple]:
        raw = []
        for source, (feed, start) in enumerate(zip(self.bound, starts, strict=True)):
            dataset = feed.dataset
            samples = [dataset.raw_sample(sample % len(dataset),
                                          np.random.default_rng([self.seed, source, sample]))
                       for sample in range(start, start + feed.batch_size)]
            images, labels, placements = zip(*samples, strict=True)
            raw.append((_stacked(images), _stacked(labels), placements))
        return raw


def _stacked(arrays: Sequence[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """One array when every array has the same shape (one block to pass), else a list of them."""
    if len({array.shape for array in arrays}) == 1:
        return np.stack(arrays)
    return [np.array(array, order="C") for array in arrays]


def _as_is(item: list[tuple]) -> list[tuple]:
    """The DataLoader's collate_fn for the CPU: items cross as NumPy arrays (see _BatchAt)."""
    return item


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
    """On the CPU, each record transformed by NumPy straight into its slot of the batch."""
    transform = feed.dataset.transform_or_identity
    shape = _one_size([transform.output_shape(tuple(image.shape), placement)
                       for image, placement in zip(images, placements, strict=True)], feed.layer_names[0])
    label_shape = tuple(labels[0].shape[:-2]) + shape[1:]     # H x W, or C x H x W (chroma)
    image_batch = torch.empty((len(placements), *shape))
    blob_shape = label_shape if len(label_shape) == 3 else (1, *label_shape)    # Caffe's N x 1 x H x W
    label_batch = torch.empty((len(placements), *blob_shape))
    for slot, (image, label, placement) in enumerate(zip(images, labels, placements, strict=True)):
        transform.place_into(np.asarray(image), np.asarray(label), placement,
                             image_batch[slot].numpy(), label_batch[slot].view(label_shape).numpy())
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
    """The start samples of this rank's batches, one round after another, forever."""

    def __init__(self, base: int, sizes: Sequence[int], shard: Shard) -> None:
        self.base, self.sizes, self.shard = base, list(sizes), shard

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        first = self.sizes[0]
        batch = self.shard.rank
        while True:
            yield tuple(self.base * size // first + batch * size for size in self.sizes)
            batch += self.shard.world_size


class DatasetStream(BatchStream):
    """Batches of a net's Data layers read from their LMDB datasets, optionally by worker processes
    that send uint8 records; the transform runs in this process, on `device` (_BatchAt, _finish).
    The unit of `position` is one sample of the first source."""

    def __init__(self, bound: Sequence, seed: int, workers: int = 0, pin_memory: bool = False,
                 shard: Shard = Shard(), device: torch.device | None = None) -> None:
        self.bound = list(bound)
        self.device = device if device is not None else torch.device("cpu")
        self.items = _BatchAt(bound, seed)
        self._means: dict = {}
        self.sizes = [feed.batch_size for feed in bound]
        self.seed, self.shard = seed, shard
        self.workers, self.pin_memory = workers, pin_memory
        self.base, self.rounds = 0, 0
        self._iterator: Iterator[Batch] | None = None

    @property
    def position(self) -> int:
        return self.base + self.rounds * self.shard.world_size * self.sizes[0]

    def _loader(self) -> Iterator[Batch]:
        batches = _RankBatches(self.base, self.sizes, self.shard)
        loader = DataLoader(self.items, batch_size=None, sampler=batches, num_workers=self.workers,
                            collate_fn=_as_is if self.device.type == "cpu" else None,
                            pin_memory=self.pin_memory, prefetch_factor=2 if self.workers else None,
                            # its own generator: a DataLoader draws a seed, which must not move the
                            # global RNG (dropout masks) depending on when a stream is (re)opened
                            generator=torch.Generator().manual_seed(self.seed))
        return iter(loader)

    def next(self) -> Batch:
        if self._iterator is None:
            self._iterator = self._loader()
        self.rounds += 1
        item = next(self._iterator)
        return _finish(item, self.bound, self.device, self._means)

    def seek(self, position: int) -> None:
        if position == self.position:
            return          # already there: keep the prefetching workers
        self.close()
        self.base, self.rounds = position, 0

    def advanced(self, start: int, batches: int) -> int:
        return start + batches * self.sizes[0]

    def close(self) -> None:
        self._iterator = None


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
