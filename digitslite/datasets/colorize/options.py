"""What a colorization dataset is made from: one folder of colour images (and optionally a second
for validation), the colour space and the ab bins; checked up front, naming the flag to change."""
import os
from dataclasses import dataclass
from pathlib import Path

from digitslite.datasets.colorize.bins import BIN_CHOICES
from digitslite.datasets.colorize.colour import SPACES
from digitslite.datasets.options import (
    DEFAULT_VAL_PERCENT,
    _check_choice,
    _check_resize,
    _folder,
    recorded_options,
)
from digitslite.errors import UserError

DEFAULT_SPACE = "lab"
DEFAULT_BINS = "paper"


@dataclass
class ColorizeOptions:
    """Everything `dataset create --task colorization` accepts; None means not given."""

    images: Path
    val_images: Path | None = None
    val_percent: int | None = None
    space: str | None = None  # lab
    bins: str | None = None  # paper for lab; no bins for yuv
    resize: str = "none"
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    workers: int | None = None
    # Resolved folders every photo must really lie in (links followed); None: anywhere.
    within: tuple[Path, ...] | None = None

    def to_dict(self) -> dict:
        return recorded_options(self)


@dataclass(frozen=True)
class ResolvedColorize:
    options: ColorizeOptions
    images: Path
    val_images: Path | None
    val_percent: int
    space: str
    bins: str | None  # None: the dataset stores no bin labels (yuv)
    workers: int


def resolve_colorize(options: ColorizeOptions) -> ResolvedColorize:
    """Check the options against each other and the file system; raise UserError naming the flag."""
    images = _folder(options.images, "--images")
    val_images = None if options.val_images is None else _folder(options.val_images, "--val-images")
    if val_images is not None and options.val_percent is not None:
        raise UserError("give either --val-images or --val-percent, not both")
    percent = 0 if val_images is not None else (
        DEFAULT_VAL_PERCENT if options.val_percent is None else options.val_percent)
    if not 0 <= percent < 100:
        raise UserError(f"--val-percent {percent} must be at least 0 and below 100")
    space = options.space or DEFAULT_SPACE
    _check_choice(space, SPACES, "--space")
    if options.bins is not None:
        _check_choice(options.bins, BIN_CHOICES, "--bins")
        if space != "lab":
            raise UserError(f"--bins quantizes Lab's ab plane; with --space {space} the dataset "
                            "stores only the chroma targets: drop --bins or use --space lab")
    bins = (options.bins or DEFAULT_BINS) if space == "lab" else None
    _check_resize(options)
    workers = options.workers if options.workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        raise UserError(f"--workers {workers} must be at least 1")
    return ResolvedColorize(options, images, val_images, percent, space, bins, workers)
