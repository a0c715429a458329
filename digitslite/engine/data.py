"""LMDB segmentation datasets for torch, and the binding of Caffe Data layers to them.

A dataset reads the DIGITS pair `<stage>_db/features` + `<stage>_db/labels` (Datum records under
shared keys, read in key order as Caffe does) and yields (image float C x H x W in BGR, label long
H x W). The LMDBs are read through datasets.reader, which shares one environment per LMDB in a
process and closes them before a fork.

Transforms are joint: one random crop window, one scale factor and one mirror decision apply to the
image and its label alike (Caffe crops and mirrors each Data layer independently, which misaligns a
label layer; digitslite takes the spatial settings from the image layer and applies them to both).

Source paths of a Data layer (`data_param.source`) resolve as follows:
  * an absolute path is used as is;
  * a relative path is joined to `dataset_root` (the current directory when none is given);
  * an empty source (as in DIGITS' prototxts, where DIGITS fills it in) becomes
    `<dataset_root>/train_db/<name>` in the TRAIN phase and `<dataset_root>/val_db/<name>` in TEST,
    <name> being `chroma` for a first top "chroma" (a colorization dataset's targets), `labels`
    when the layer's first top contains "label", else `features`.
The path names one LMDB of the pair; its sibling is found by DIGITS' convention: a source whose
folder is named `labels` (or `chroma`) is the label half and `features` beside it the image half;
any other source is the image half and, beside it, the label database that the phase's label
layer reads (`labels` by default) the label half. A label record of one channel is an H x W map;
one of several channels (chroma) stays C x H x W, cropped and mirrored with the image alike.
`transform_param.mean_file` resolves like a relative source.
"""
import os
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional
from torch.utils.data import Dataset

from digitslite.caffe import caffe_pb2
from digitslite.caffe.deploy import LABEL_DATABASES
from digitslite.datasets.mean import read_mean_file
from digitslite.datasets.reader import db_keys, db_value
from digitslite.datasets.records import Allocate, datum_array
from digitslite.errors import UserError
from digitslite.layout import DatasetFiles

PathLike = Path | str
MEAN_MODES = ("none", "image", "pixel")
IMAGE, LABEL = "image", "label"


def load_mean(mean_file: PathLike, mode: str) -> np.ndarray | None:
    """DIGITS' mean subtraction choice: the C x H x W mean image, its C x 1 x 1 pixel mean, or None."""
    if mode not in MEAN_MODES:
        raise UserError(f"mean mode {mode!r} is not one of {', '.join(MEAN_MODES)}")
    if mode == "none":
        return None
    mean = read_mean_file(Path(mean_file))
    return mean if mode == "image" else mean.mean(axis=(1, 2), keepdims=True)


@dataclass(frozen=True)
class SegmentationTransform:
    """Per-sample preprocessing, in Caffe's arithmetic: value = (pixel - mean) * scale.

    crop_size:    0 (no crop), an int (square, as Caffe) or (height, width). Smaller images are
                  padded first: the image with 0 after mean subtraction, the label with ignore_label.
    random_crop:  True picks the window uniformly (Caffe TRAIN); False takes the centre (Caffe TEST).
    mirror:       flip both horizontally with probability 1/2 (Caffe does this in both phases).
    scale_jitter: (low, high): resize both by a factor drawn uniformly from the range (image
                  bilinear, label nearest) before cropping.
    mean:         C x H x W (a mean image the size of the record) or per-channel values (C,) /
                  (C, 1, 1), in the records' BGR order.
    """

    crop_size: int | tuple[int, int] = 0
    random_crop: bool = True
    mirror: bool = False
    scale_jitter: tuple[float, float] | None = None
    mean: np.ndarray | None = None
    scale: float = 1.0
    ignore_label: int = 255

    @classmethod
    def from_caffe(cls, param: caffe_pb2.TransformationParameter, phase: int,
                   base_dir: Path | None = None, ignore_label: int = 255) -> "SegmentationTransform":
        """Caffe's TransformationParameter: scale, mirror, crop_size, mean_file or mean_value."""
        if param.HasField("mean_file") and len(param.mean_value):
            raise UserError("transform_param has both mean_file and mean_value; Caffe allows only one: "
                            "remove one of them")
        mean = None
        if param.HasField("mean_file"):
            mean = read_mean_file(_resolve(param.mean_file, base_dir))
        elif len(param.mean_value):
            mean = np.asarray(param.mean_value, dtype=np.float32)
        return cls(crop_size=param.crop_size, random_crop=phase == caffe_pb2.TRAIN, mirror=param.mirror,
                   mean=mean, scale=param.scale, ignore_label=ignore_label)

    @property
    def crop_shape(self) -> tuple[int, int] | None:
        if not self.crop_size:
            return None
        return (self.crop_size, self.crop_size) if isinstance(self.crop_size, int) else tuple(self.crop_size)

    def draw(self, height: int, width: int, rng: random.Random) -> "Placement":
        """The random choices for a record of height x width, drawn in Caffe's order: scale, crop, mirror."""
        factor = rng.uniform(*self.scale_jitter) if self.scale_jitter is not None else None
        if factor is not None:
            height, width = _scaled(height, factor), _scaled(width, factor)
        top = left = 0
        if self.crop_shape is not None:
            crop_h, crop_w = self.crop_shape
            spare_h, spare_w = max(height, crop_h) - crop_h, max(width, crop_w) - crop_w
            if self.random_crop:
                top, left = rng.randrange(spare_h + 1), rng.randrange(spare_w + 1)
            else:
                top, left = spare_h // 2, spare_w // 2
        return Placement(factor, top, left, self.mirror and rng.random() < 0.5)

    def __call__(self, image: np.ndarray, label: np.ndarray,
                 rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
        """image: C x H x W (any dtype), label: H x W -> (float32 image, int64 label), both numpy.

        NumPy, not torch: per-sample work is small, and torch's intra-op thread pool costs more
        than it saves here (about 30x for a uint8->float conversion on a busy 2-core machine).
        """
        return self.place(image, label, self.draw(*label.shape[-2:], rng))

    def output_shape(self, image_shape: tuple[int, ...], placement: "Placement") -> tuple[int, int, int]:
        """C, H, W of the transformed image of a record of `image_shape` (its label's last two)."""
        channels, height, width = image_shape
        if placement.factor is not None:
            height, width = _scaled(height, placement.factor), _scaled(width, placement.factor)
        return (channels, *(self.crop_shape or (height, width)))

    def place(self, image: np.ndarray, label: np.ndarray,
              placement: "Placement") -> tuple[np.ndarray, np.ndarray]:
        """The transform with its random choices already drawn (`draw`), in NumPy, into new arrays."""
        image_out = np.empty(self.output_shape(image.shape, placement), np.float32)
        label_out = np.empty(label.shape[:-2] + image_out.shape[1:], np.int64)
        self.place_all([image], [label], [placement], image_out[None], label_out[None])
        return image_out, label_out

    def place_all(self, images: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                  placements: Sequence["Placement"], images_out: np.ndarray, labels_out: np.ndarray) -> None:
        """`place` of each record into its slot of a batch: float32 `images_out` (N x output_shape)
        and `labels_out` (N x the label's leading axes x H x W, any number dtype); no intermediate
        image.

        Crop and mirror only pick pixels, so they are applied to the uint8 record and to the mean
        before the arithmetic: the picked pixels are widened into the slot, the picked mean is
        subtracted and the scale applied in place, each value (pixel - mean) * scale in float32, as
        Caffe computes it. Every pass runs over contiguous memory: a mirror reverses the uint8
        window first and subtracts a mirrored copy of the mean (NumPy's loops over a reversed
        float32 view are four times slower). The passes go piece by piece (`_blocks`), each piece
        still in the cache from the pass before, and piece by piece over the whole batch, so that
        a mean image's piece is read from memory once a batch, not once a record. Only scale
        jitter needs the whole mean-subtracted image first.
        """
        windows = [self._window(*record) for record in zip(images, labels, placements, images_out, labels_out,
                                                          strict=True)]
        for channels, band in _blocks(*images_out.shape[1:]):
            for window in windows:
                window.fill(channels, band, self.scale)

    def _window(self, image: np.ndarray, label: np.ndarray, placement: "Placement", image_out: np.ndarray,
                label_out: np.ndarray) -> "_Window":
        """One record's part of `place_all`: its label placed, its padding filled, and what its
        pixel passes read and write."""
        mean = self._mean_for(image) if self.mean is not None else None
        if placement.factor is not None:
            image = np.subtract(image, mean, dtype=np.float32) if mean is not None else image
            image, label = self._rescale(image.astype(np.float32, copy=False), label, placement.factor)
            mean = None
        height, width = label.shape[-2:]
        crop_h, crop_w = self.crop_shape or (height, width)
        rows = slice(placement.top, min(placement.top + crop_h, height))
        cols = slice(placement.left, min(placement.left + crop_w, width))
        kept_h, kept_w = rows.stop - rows.start, cols.stop - cols.start
        if (kept_h, kept_w) != (crop_h, crop_w):     # padded: 0 after the mean, times the scale
            image_out.fill(np.float32(0) * np.float32(self.scale))
            label_out.fill(self.ignore_label)
        # the pad is below and right of the record; a mirror moves it to the left
        out_cols = slice(crop_w - kept_w, crop_w) if placement.mirror else slice(0, kept_w)
        picked = label[..., rows, cols]
        np.copyto(label_out[..., :kept_h, out_cols], _mirrored(picked) if placement.mirror else picked,
                  casting="unsafe")
        spot = None
        if mean is not None:
            if mean.shape[1:] == (1, 1):
                spot = mean
            elif placement.mirror:      # the mirrored mean's columns for this window
                spot = self._mirrored_mean[:, rows, width - cols.stop:width - cols.start]
            else:
                spot = mean[:, rows, cols]
        return _Window(image[:, rows, cols], image_out[:, :kept_h, out_cols], spot, placement.mirror)

    def mean_tensor(self, image_shape: tuple[int, ...], device: torch.device) -> torch.Tensor | None:
        """The mean, checked against a record of `image_shape`, as a float32 tensor on `device`."""
        if self.mean is None:
            return None
        return torch.from_numpy(self._mean_for(np.empty(image_shape, np.float32))).to(device)

    def apply(self, image: torch.Tensor, label: torch.Tensor, placement: "Placement",
              mean: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """`place` in torch, bit for bit, on the record's device (an accelerator's): uint8 C x H x W
        image and H x W label in, float32 image and int64 label out (`mean` from `mean_tensor`)."""
        image = image.to(torch.float32)
        label = label.to(torch.int64)
        if mean is not None:
            image = image - mean
        if placement.factor is not None:
            image, label = _rescale_tensors(image, label, placement.factor)
        if self.crop_shape is not None:
            crop_h, crop_w = self.crop_shape
            pad_h, pad_w = max(0, crop_h - image.shape[1]), max(0, crop_w - image.shape[2])
            if pad_h or pad_w:
                image = functional.pad(image, (0, pad_w, 0, pad_h))
                label = functional.pad(label, (0, pad_w, 0, pad_h), value=self.ignore_label)
            top, left = placement.top, placement.left
            image = image[:, top:top + crop_h, left:left + crop_w]
            label = label[..., top:top + crop_h, left:left + crop_w]
        if placement.mirror:
            image, label = image.flip(-1), label.flip(-1)
        if self.scale != 1.0:
            image = image * torch.tensor(self.scale, dtype=torch.float32, device=image.device)
        return image.contiguous(), label.contiguous()

    def _mean_for(self, image: np.ndarray) -> np.ndarray:
        """The mean as float32 C x H x W or C x 1 x 1, checked against the record `image`."""
        mean = self._float_mean
        if mean.ndim != 3 or mean.shape[0] not in (1, image.shape[0]) \
                or (mean.shape[1:] != (1, 1) and mean.shape[1:] != image.shape[1:]):
            raise UserError(f"the mean has shape {mean.shape} but the record is {image.shape}; a mean "
                            "image must match the record size (use the pixel mean, or resize the dataset "
                            "to one size)")
        return mean

    @cached_property
    def _float_mean(self) -> np.ndarray:
        mean = np.asarray(self.mean, dtype=np.float32)
        return mean.reshape(-1, 1, 1) if mean.ndim == 1 else mean

    @cached_property
    def _mirrored_mean(self) -> np.ndarray:
        """The mean image flipped left to right, contiguous (`_window`)."""
        return np.ascontiguousarray(self._float_mean[..., ::-1])

    @staticmethod
    def _rescale(image: np.ndarray, label: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
        resized, label = _rescale_tensors(torch.from_numpy(image), torch.tensor(label), factor)
        return resized.numpy(), label.numpy()


@dataclass(frozen=True)
class Placement:
    """One sample's random choices: scale factor (None: no jitter), crop window corner, mirror."""

    factor: float | None
    top: int
    left: int
    mirror: bool


@dataclass(frozen=True)
class _Window:
    """A record's picked pixels, the part of its batch slot they go to, the mean they lose (None,
    C x 1 x 1, or the window's C x H x W; one channel serves all) and whether they are mirrored."""

    pixels: np.ndarray
    target: np.ndarray
    spot: np.ndarray | None
    mirror: bool

    def fill(self, channels: slice, band: slice, scale: float) -> None:
        """The passes over one piece (`_blocks`); a band past the window's rows is empty."""
        piece, picked = self.target[channels, band], self.pixels[channels, band]
        np.copyto(piece, _mirrored(picked) if self.mirror else picked, casting="unsafe")
        if self.spot is not None:
            spot = self.spot if len(self.spot) == 1 else self.spot[channels]
            np.subtract(piece, spot if spot.shape[1:] == (1, 1) else spot[:, band], out=piece)
        if scale != 1.0:
            np.multiply(piece, np.float32(scale), out=piece)


_BLOCK_VALUES = 1 << 16     # float32 values place_all works on at once: 256 KiB, within a core's L2


def _blocks(channels: int, height: int, width: int) -> Iterator[tuple[slice, slice]]:
    """(channels, rows) pieces of a C x H x W window of about _BLOCK_VALUES values (at least a row)
    each: the whole window when it is that small, else row bands of one channel. At 480x360 the
    three passes take 227 us an image by bands against 316 us over the whole; a small window
    gains nothing from more calls."""
    if channels * height * width <= _BLOCK_VALUES:
        yield slice(None), slice(None)
        return
    rows = max(1, _BLOCK_VALUES // width)
    for channel in range(channels):
        for top in range(0, height, rows):
            yield slice(channel, channel + 1), slice(top, top + rows)


def _mirrored(pixels: np.ndarray) -> np.ndarray:
    """`pixels` with the last axis reversed, as a new contiguous array. For uint8 rows of whole
    8-byte words, the words are taken in reverse order and each one's bytes swapped: the same
    reversal in one vectorised pass, three times faster than NumPy's byte-by-byte reversed copy."""
    if pixels.dtype == np.uint8 and pixels.shape[-1] % 8 == 0 and pixels.strides[-1] == 1:
        return pixels.view(np.uint64)[..., ::-1].byteswap().view(np.uint8)
    return pixels[..., ::-1].copy()


def _scaled(size: int, factor: float) -> int:
    return max(1, round(size * factor))


def _rescale_tensors(image: torch.Tensor, label: torch.Tensor,
                     factor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear image (torch's align_corners=False) and nearest label (source index floor(i / factor))."""
    height, width = _scaled(image.shape[1], factor), _scaled(image.shape[2], factor)
    resized = functional.interpolate(image[None], size=(height, width), mode="bilinear",
                                     align_corners=False)[0]
    rows = torch.arange(height, device=label.device) * label.shape[-2] // height
    cols = torch.arange(width, device=label.device) * label.shape[-1] // width
    return resized, label[..., rows[:, None], cols[None, :]]


class SegmentationLmdbDataset(Dataset):
    """(image, label) pairs from `<db_dir>/<features>` and `<db_dir>/<labels>`, in key order."""

    def __init__(self, db_dir: PathLike, transform: SegmentationTransform | None = None, *,
                 features: str = "features", labels: str = "labels") -> None:
        self.features_path = Path(db_dir) / features
        self.labels_path = Path(db_dir) / labels
        self.transform = transform
        self._keys = db_keys(self.features_path)
        label_keys = db_keys(self.labels_path)
        if label_keys != self._keys:
            raise UserError(f"{self.labels_path}: its {len(label_keys)} keys differ from the "
                            f"{len(self._keys)} keys of {self.features_path}; recreate the dataset")
        self._rng_pid: int | None = None
        self._rng: random.Random | None = None

    def __len__(self) -> int:
        return len(self._keys)

    def _random(self) -> random.Random:
        """A generator per process: torch seeds each DataLoader worker differently, and in the main
        process torch.initial_seed() is torch's seed, so torch.manual_seed makes runs repeatable."""
        if self._rng_pid != os.getpid():
            self._rng = random.Random(torch.initial_seed())
            self._rng_pid = os.getpid()
        return self._rng

    def record(self, index: int, allocate: Allocate | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The stored pixels without any transform: (C x H x W uint8 BGR, H x W uint8 indices),
        decoded into `allocate`'s arrays when given (`datum_array`)."""
        key = self._keys[index]
        values = [db_value(path, key) for path in (self.features_path, self.labels_path)]
        image, label = datum_array(values[0], allocate), datum_array(values[1], allocate)
        label = label[0] if label.shape[0] == 1 else label
        if image.shape[1:] != label.shape[-2:]:
            raise UserError(f"{self.features_path} record {key.decode(errors='replace')}: image "
                            f"{image.shape[2]}x{image.shape[1]} but label {label.shape[1]}x{label.shape[0]}; "
                            "recreate the dataset")
        return image, label

    def raw_sample(self, index: int, rng: random.Random,
                   allocate: Allocate | None = None) -> tuple[np.ndarray, np.ndarray, Placement]:
        """Record `index` untransformed (uint8) with the transform's random choices drawn from `rng`,
        the same draws `sample` makes: a training stream sends these across processes, 4x smaller
        than float32, and transforms them in the training process (`place_all`, or `apply` on an
        accelerator). A stream's worker decodes them into its shared-memory slot (`allocate`)."""
        image, label = self.record(index, allocate)
        return image, label, self.transform_or_identity.draw(*label.shape[-2:], rng)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(float32 C x H x W image in BGR, int64 H x W label), transformed if a transform is set."""
        return self.sample(index, self._random())

    def sample(self, index: int, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
        """Record `index` through the transform, its random choices drawn from `rng` (callers that
        need a data order independent of the process, like distributed training, pass their own)."""
        image, label = self.record(index)
        image, label = self.transform_or_identity(image, label, rng)
        return torch.from_numpy(image), torch.from_numpy(label)

    @property
    def transform_or_identity(self) -> SegmentationTransform:
        """The transform; without one, the identity (the float32 pixels; it draws nothing)."""
        return self.transform if self.transform is not None else SegmentationTransform()


@dataclass(frozen=True)
class BoundDataLayer:
    """Data layers fed from one dataset: which item (image or label) each top receives."""

    layer_names: tuple[str, ...]
    dataset: SegmentationLmdbDataset
    batch_size: int
    tops: dict[str, str]


def _resolve(path: str, base_dir: Path | None) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else (base_dir or Path.cwd()) / candidate


def _source(layer: caffe_pb2.LayerParameter, phase: int, dataset_root: Path | None) -> tuple[Path, str]:
    """(LMDB path, role) of a Data layer, following the rules in the module docstring."""
    source = layer.data_param.source
    if source:
        path = _resolve(source, dataset_root)
        return path, LABEL if path.name in LABEL_DATABASES.values() else IMAGE
    top = layer.top[0] if layer.top else ""
    part = LABEL_DATABASES.get(top, "labels" if "label" in top else "features")
    if dataset_root is None:
        raise UserError(f"layer {layer.name!r}: data_param.source is empty; set it to a features LMDB or "
                        "give the dataset folder (as DIGITS does) so that it can be filled in")
    stage = "train" if phase == caffe_pb2.TRAIN else "val"
    return DatasetFiles(dataset_root).db(stage, part), LABEL if part != "features" else IMAGE


def dataset_from_data_layer(layer: caffe_pb2.LayerParameter, phase: int, dataset_root: PathLike | None = None,
                            *, ignore_label: int = 255, labels: str = "labels") -> BoundDataLayer:
    """Bind one Caffe Data layer to its LMDB pair; see the module docstring for how paths resolve.

    An image layer's top 0 gets the image and its top 1 (if any) the label map; a label layer's
    top 0 gets the label map. transform_param applies to the image layer (and, jointly, its label).
    """
    if layer.type != "Data":
        raise UserError(f"layer {layer.name!r} is of type {layer.type!r}; only Data layers read LMDBs")
    if layer.data_param.HasField("backend") and layer.data_param.backend != caffe_pb2.DataParameter.LMDB:
        raise UserError(f"layer {layer.name!r}: backend LEVELDB is not supported; set "
                        "data_param.backend: LMDB and use an LMDB dataset")
    root = None if dataset_root is None else Path(dataset_root)
    path, role = _source(layer, phase, root)
    if role == LABEL and layer.HasField("transform_param") and layer.transform_param.ByteSize():
        raise UserError(f"layer {layer.name!r} reads labels but has a transform_param; crop and mirror "
                        "come from the image layer and apply to the label jointly: remove it")
    names = {"features": path.name, "labels": labels} if role == IMAGE else \
        {"features": "features", "labels": path.name}
    transform = None
    if role == IMAGE and layer.HasField("transform_param"):
        transform = SegmentationTransform.from_caffe(layer.transform_param, phase, root, ignore_label)
    try:
        dataset = SegmentationLmdbDataset(path.parent, transform, **names)
    except UserError as exc:
        raise UserError(f"layer {layer.name!r}: {exc}") from exc
    roles = [IMAGE, LABEL] if role == IMAGE else [LABEL]
    return BoundDataLayer((layer.name,), dataset, layer.data_param.batch_size or 1,
                          dict(zip(layer.top, roles, strict=False)))


def bind_data_layers(layers: Iterable[caffe_pb2.LayerParameter], phase: int,
                     dataset_root: PathLike | None = None, *,
                     ignore_label: int = 255) -> list[BoundDataLayer]:
    """Bind the Data layers of one phase (already filtered by include/exclude), merging the image
    and label layers that read one LMDB pair into a single feed, so their records stay in step."""
    feeds: dict[tuple[Path, Path], BoundDataLayer] = {}
    layers = [layer for layer in layers if layer.type == "Data"]
    root = None if dataset_root is None else Path(dataset_root)
    read = [_source(layer, phase, root) for layer in layers if layer.data_param.source or root is not None]
    labels = next((path.name for path, role in read if role == LABEL), "labels")
    for layer in layers:
        bound = dataset_from_data_layer(layer, phase, dataset_root, ignore_label=ignore_label, labels=labels)
        pair = (bound.dataset.features_path.resolve(), bound.dataset.labels_path.resolve())
        known = feeds.get(pair)
        if known is None:
            feeds[pair] = bound
            continue
        if known.batch_size != bound.batch_size:
            raise UserError(f"layers {known.layer_names[0]!r} and {layer.name!r} read one dataset with "
                            f"batch sizes {known.batch_size} and {bound.batch_size}; give them the same")
        image_side = bound if IMAGE in bound.tops.values() else known
        feeds[pair] = replace(image_side, layer_names=known.layer_names + bound.layer_names,
                              tops=known.tops | bound.tops)
    return list(feeds.values())
