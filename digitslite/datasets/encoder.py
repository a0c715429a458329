"""The per-pair work done in encoder processes: read, check, decode, resize, encode, write.

Each pair is opened once: the same pass that validates the label also produces the Datum
records, so a clean dataset costs one decode per file. Workers write their records straight into
the LMDBs and send the parent only the small per-pair facts (problems, sizes, class histogram), so
the parent never becomes the bottleneck. A shared flag lets the parent stop encoding (an error was
found: only the report matters now); each process sums its own training images for the mean and
hands the sum over once, at the end.
"""
import resource
import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from digitslite.datasets.labels import Found, LabelDecoder, is_16bit, value_histogram
from digitslite.datasets.lmdb_writer import SplitWriters, StopFlag, WritingState
from digitslite.datasets.mean import MeanAccumulator
from digitslite.datasets.options import MAX_PIXELS
from digitslite.datasets.records import feature_datum, label_datum, record_key
from digitslite.datasets.resize import ResizeSpec, resize_pair

STAGE_NUMBERS = {"train": 0, "val": 1}
# Heap of one encoder process: a largest image, its label, the resized copies and the mean sums fit.
MAX_ENCODER_MEMORY = 4 << 30


@dataclass(frozen=True)
class EncoderConfig:
    decoder: LabelDecoder
    resize: ResizeSpec | None
    encoding: str
    out_dir: Path | None  # where the split LMDBs go; None only checks
    seed: int

    def start(self, stop_encoding: StopFlag) -> "EncoderState":
        return EncoderState(self, stop_encoding)


@dataclass(frozen=True)
class WorkItem:
    stage: str
    position: int
    image: Path
    label: Path


@dataclass
class ItemResult:
    item: WorkItem
    found: Found
    source_size: tuple[int, int] | None = None  # (width, height)
    histogram: np.ndarray | None = None  # pixels per index value 0-255 of the stored label
    stored_size: tuple[int, int] | None = None


class EncoderState(WritingState):
    """What one encoding process keeps between chunks: its LMDB writers and its mean sum."""

    def __init__(self, config: EncoderConfig, stop_encoding: StopFlag) -> None:
        super().__init__(config.out_dir, stop_encoding)
        self.config = config
        self.mean = MeanAccumulator()

    def process(self, items: list[WorkItem]) -> list[ItemResult]:
        return process_chunk(items, self)

    def finish(self) -> MeanAccumulator:
        """Commit and close this process's writers; return its mean sum."""
        self.finish_writing()
        return self.mean


def end_quietly_on_broken_pipe() -> None:
    """A pool process whose parent died (a server killed mid-check) ends at its next write, as Unix
    programs do on SIGPIPE, instead of printing BrokenPipeError tracebacks into the server's log."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def bound_memory() -> None:
    """Cap this encoder process's heap, so that one hostile image fails with MemoryError (a report
    line) instead of growing until the machine's memory is gone."""
    resource.setrlimit(resource.RLIMIT_DATA, (MAX_ENCODER_MEMORY, MAX_ENCODER_MEMORY))


def open_image(path: Path) -> tuple[Image.Image | None, bool, str]:
    """(loaded image or None, whether the file is 16-bit, why it could not be read)."""
    try:
        image = Image.open(path)
        if image.width * image.height > MAX_PIXELS:  # known from the header, before decoding
            return None, False, (f"{path} ({image.width}x{image.height} is more than {MAX_PIXELS} pixels; "
                                 "make the image smaller)")
        sixteen_bit = is_16bit(image)
        image.load()
    # Pillow's decoders fail with OSError, SyntaxError, ValueError, struct.error, EOFError or
    # DecompressionBombError depending on the format: any of them means the file is unreadable.
    except Exception as exc:
        reason = str(exc).replace(f" '{path}'", "")  # Pillow repeats the path; the example has it
        return None, False, f"{path} ({type(exc).__name__}: {reason})"
    return image, sixteen_bit, ""


def process_item(item: WorkItem, config: EncoderConfig,
                 writers: SplitWriters | None) -> tuple[ItemResult, Image.Image | None]:
    """Check and convert one pair: (result, the RGB image as stored, or None if the pair failed).

    Problems go in `result.found`; the Datum records are written only when `writers` is given.
    """
    image, _, image_error = open_image(item.image)
    label, label_16bit, label_error = open_image(item.label)
    if image is None or label is None:
        errors = [("unreadable", error) for error in (image_error, label_error) if error]
        return ItemResult(item, errors), None
    result = ItemResult(item, [], source_size=image.size)
    if label_16bit:
        result.found.append(("label_16bit", f"{item.label} (mode {label.mode}, 16 bits per channel)"))
        return result, None
    if image.size != label.size:
        result.found.append(("size_mismatch", f"{item.label} is {label.width}x{label.height}, "
                                              f"{item.image} is {image.width}x{image.height}"))
        return result, None
    decoded, result.found = config.decoder.decode(label, item.label)
    if decoded is None:
        return result, None
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    indices, result.histogram = decoded.indices, decoded.histogram
    if config.resize is not None:
        rng = np.random.default_rng([config.seed, STAGE_NUMBERS[item.stage], item.position])
        rgb, indices = resize_pair(rgb, indices, config.resize, config.decoder.ignore_label, rng)
        result.histogram = value_histogram(indices)
    result.stored_size = rgb.size
    if writers is not None:
        writers.put(item.stage, record_key(item.position),
                    {"features": feature_datum(rgb, config.encoding), "labels": label_datum(indices)})
    return result, rgb


def process_chunk(items: list[WorkItem], state: EncoderState) -> list[ItemResult]:
    """Process consecutive items, write their records (committed in batches and at the finish), sum
    the training images."""
    results = []
    for item in items:
        writers = None if state.stop_encoding.is_set() else state.writers
        result, stored = process_item(item, state.config, writers)
        results.append(result)
        if writers is not None and stored is not None and item.stage == "train":
            state.mean.add(np.asarray(stored))
    return results
