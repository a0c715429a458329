"""The per-image work of colorization datasets, run by the dataset worker pool.

Pass 1 (`PlanesConfig`) reads each colour image once: it is converted, its lightness and chroma
planes are written (unless only checking), and each process sums the training images' stored
chroma pairs in a 256 x 256 histogram and their lightness, handed over once at the end, so memory
stays flat however many images there are. Pass 2 (`LabelsConfig`, Lab only) turns the stored
chroma of every written record into bin labels through one lookup table, once the training
histogram has fixed the bins; it reads small PNGs, not photographs.
"""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digitslite.datasets.colorize.bins import label_map
from digitslite.datasets.colorize.colour import COLOUR_SPACES, is_grey
from digitslite.datasets.encoder import STAGE_NUMBERS, open_image
from digitslite.datasets.lmdb_writer import StopFlag, WritingState
from digitslite.datasets.reader import close_readers, db_value
from digitslite.datasets.records import datum_array, label_datum, planes_datum
from digitslite.datasets.resize import ResizeSpec, resize_pair
from digitslite.layout import DatasetFiles

FEATURES, CHROMA, LABELS = "features", "chroma", "labels"
COLOURLESS_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"})
HISTOGRAM_SIZE = 256 * 256


@dataclass(frozen=True)
class ImageItem:
    stage: str
    position: int
    key: bytes
    image: Path


@dataclass
class ImageResult:
    item: ImageItem
    found: list[tuple[str, str]]
    source_size: tuple[int, int] | None = None
    stored_size: tuple[int, int] | None = None  # None: nothing stored (unreadable or grey)


@dataclass
class PlaneTotals:
    """One process's sums over the training images it stored."""

    chroma_histogram: np.ndarray = field(default_factory=lambda: np.zeros(HISTOGRAM_SIZE, dtype=np.int64))
    lightness_sum: int = 0
    pixels: int = 0

    def add(self, lightness: np.ndarray, chroma: np.ndarray) -> None:
        pairs = chroma[..., 0].astype(np.int64) * 256 + chroma[..., 1]
        self.chroma_histogram += np.bincount(pairs.ravel(), minlength=HISTOGRAM_SIZE)
        self.lightness_sum += int(lightness.sum(dtype=np.int64))
        self.pixels += lightness.size

    def merge(self, other: "PlaneTotals") -> None:
        self.chroma_histogram += other.chroma_histogram
        self.lightness_sum += other.lightness_sum
        self.pixels += other.pixels


@dataclass(frozen=True)
class PlanesConfig:
    space: str
    resize: ResizeSpec | None
    out_dir: Path | None  # None only checks
    seed: int

    def start(self, stop_encoding: StopFlag) -> "PlanesState":
        return PlanesState(self, stop_encoding)


class PlanesState(WritingState):
    """Checks and converts each photo, writes its planes and sums the training planes."""

    def __init__(self, config: PlanesConfig, stop_encoding: StopFlag) -> None:
        super().__init__(config.out_dir, stop_encoding)
        self.config = config
        self.totals = PlaneTotals()

    def process(self, items: list[ImageItem]) -> list[ImageResult]:
        return [self._one(item) for item in items]

    def _one(self, item: ImageItem) -> ImageResult:
        image, _, error = open_image(item.image)
        if image is None:
            return ImageResult(item, [("unreadable", error)])
        result = ImageResult(item, [], source_size=image.size)
        if image.mode in COLOURLESS_MODES:
            result.found.append(("grey_image", f"{item.image} (mode {image.mode})"))
            return result
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        if self.config.resize is not None:
            rng = np.random.default_rng([self.config.seed, STAGE_NUMBERS[item.stage], item.position])
            no_label = np.zeros((rgb.height, rgb.width), dtype=np.uint8)
            rgb, _ = resize_pair(rgb, no_label, self.config.resize, 0, rng)
        pixels = np.asarray(rgb)
        if is_grey(pixels):
            result.found.append(("grey_image", f"{item.image} (R, G and B equal in every pixel)"))
            return result
        result.stored_size = rgb.size
        if self.stop_encoding.is_set():
            return result
        space = COLOUR_SPACES[self.config.space]
        lightness, chroma = space.encode(space.from_rgb(pixels))
        if item.stage == "train":
            self.totals.add(lightness, chroma)
        if self.writers is not None:
            self.writers.put(item.stage, item.key,
                             {FEATURES: planes_datum(lightness), CHROMA: planes_datum(chroma)})
        return result

    def finish(self) -> PlaneTotals:
        self.finish_writing()
        return self.totals


@dataclass(frozen=True)
class LabelsConfig:
    out_dir: Path
    lookup: np.ndarray  # (256, 256) uint16: stored chroma pair -> bin

    def start(self, stop_encoding: StopFlag) -> "LabelsState":
        return LabelsState(self, stop_encoding)


class LabelsState(WritingState):
    """Reads the chroma records back through datasets.reader and writes their bin labels."""

    def __init__(self, config: LabelsConfig, stop_encoding: StopFlag) -> None:
        super().__init__(config.out_dir, stop_encoding)
        self.config = config

    def process(self, items: list[tuple[str, bytes]]) -> list[None]:
        files = DatasetFiles(self.config.out_dir)
        for stage, key in items:
            if not self.stop_encoding.is_set():
                chroma = datum_array(db_value(files.db(stage, CHROMA), key)).transpose(1, 2, 0)
                self.writers.put(stage, key, {LABELS: label_datum(label_map(chroma, self.config.lookup))})
        return [None] * len(items)

    def finish(self) -> None:
        close_readers()  # the folder is renamed when it is published
        self.finish_writing()

    def abandon(self) -> None:
        close_readers()
        super().abandon()
