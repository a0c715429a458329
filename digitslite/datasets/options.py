"""What a dataset is made from: the options (mirroring `digitslite dataset create`) and their checks.

`resolve_options` turns options into a plan: folders checked, class list and colours read, every
contradiction refused up front with the flag to change, before a single image is opened.
"""
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from digitslite.datasets.colormap import RGB, ColorMap, read_class_names, read_colormap
from digitslite.datasets.controls import OptionError
from digitslite.errors import UserError

LABEL_MODES = ("palette", "rgb", "index")
ENCODINGS = ("png", "jpg", "none")
RESIZE_MODES = ("none", "squash", "crop", "fill", "half_crop")
DEFAULT_VAL_PERCENT = 10
# Bounds on one image, source or resize target: a side, and the pixels of the whole (4096 x 4096).
# The encoders' memory grows with them (the mean alone takes 24 bytes a pixel).
MAX_SIDE = 8192
MAX_PIXELS = 4096 * 4096


def recorded_options(options: Any) -> dict:
    """A task's options (a dataclass) as recorded in dataset.json; `within` is the server's business,
    not the data's."""
    return {key: str(value) if isinstance(value, Path) else value
            for key, value in asdict(options).items() if key != "within"}


@dataclass
class DatasetOptions:
    """Everything `dataset create` accepts. Paths may be str or Path; None means not given."""

    images: Path | None = None
    labels: Path | None = None
    train_list: Path | None = None  # instead of images/labels: `image label` lines, as DIGITS reads
    val_list: Path | None = None
    val_images: Path | None = None
    val_labels: Path | None = None
    val_percent: int | None = None
    label_mode: str = "palette"
    colormap: Path | None = None
    classes: Path | None = None
    nearest: bool = False
    ignore_label: int = 255
    encoding: str = "png"
    resize: str = "none"
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    workers: int | None = None
    allow_empty_classes: bool = False
    # Resolved folders every image and label must really lie in (links followed); None: anywhere.
    within: tuple[Path, ...] | None = None

    def to_dict(self) -> dict:
        return recorded_options(self)


@dataclass(frozen=True)
class ClassSpec:
    """The class list known before any label is read; count None means 'from the labels'."""

    names: tuple[str, ...] | None
    colours: tuple[RGB, ...] | None

    @property
    def count(self) -> int | None:
        if self.names is not None:
            return len(self.names)
        return None if self.colours is None else len(self.colours)


@dataclass(frozen=True)
class ResolvedOptions:
    options: DatasetOptions
    images: Path | None       # None: the training pairs come from train_list
    labels: Path | None
    val_images: Path | None
    val_labels: Path | None
    val_percent: int
    class_spec: ClassSpec
    workers: int
    train_list: Path | None = None
    val_list: Path | None = None


def _folder(path: Path | str, flag: str) -> Path:
    folder = Path(path).expanduser().absolute()
    if not folder.is_dir():
        raise UserError(f"{folder}: {flag} must be an existing folder")
    return folder


def _check_choice(value: str, choices: tuple[str, ...], flag: str) -> None:
    if value not in choices:
        raise UserError(f"{flag} {value!r} is not one of {', '.join(choices)}")


def _list_file(path: Path | str, flag: str) -> Path:
    listing = Path(path).expanduser().absolute()
    if not listing.is_file():
        raise UserError(f"{listing}: {flag} must be an existing text file ('image label' per line)")
    return listing


def _resolve_sources(options: DatasetOptions) -> tuple[Path | None, Path | None, Path | None]:
    """(images, labels, train_list): the training pairs come from two folders or from one list."""
    if options.train_list is not None:
        if options.images is not None or options.labels is not None:
            raise UserError("give either --images/--labels or --train-list, not both")
        return None, None, _list_file(options.train_list, "--train-list")
    if options.images is None or options.labels is None:
        raise UserError("give the training pairs: --images and --labels (folders), or --train-list FILE")
    return _folder(options.images, "--images"), _folder(options.labels, "--labels"), None


def _resolve_val(options: DatasetOptions) -> tuple[Path | None, Path | None, int]:
    if (options.val_images is None) != (options.val_labels is None):
        raise UserError("--val-images and --val-labels go together: give both folders or neither")
    if options.val_list is not None:
        if options.val_images is not None or options.val_percent is not None:
            raise UserError("give one source of validation pairs: --val-list, --val-images/--val-labels "
                            "or --val-percent")
        return None, None, 0
    if options.val_images is not None:
        if options.val_percent is not None:
            raise UserError("give either --val-images/--val-labels or --val-percent, not both")
        return _folder(options.val_images, "--val-images"), _folder(options.val_labels, "--val-labels"), 0
    percent = DEFAULT_VAL_PERCENT if options.val_percent is None else options.val_percent
    if not 0 <= percent < 100:
        raise UserError(f"--val-percent {percent} must be at least 0 and below 100")
    return None, None, percent


def _check_resize(options: DatasetOptions) -> None:
    _check_choice(options.resize, RESIZE_MODES, "--resize")
    sized = options.width is not None or options.height is not None
    if options.resize == "none":
        if sized:
            raise UserError("--width/--height need a --resize mode (squash, crop, fill, half_crop)")
        return
    for flag, value in (("--width", options.width), ("--height", options.height)):
        if value is None or value < 1:
            raise UserError(f"--resize {options.resize} needs {flag} as a positive number of pixels")
        if value > MAX_SIDE:
            raise UserError(f"{flag} {value} is larger than {MAX_SIDE} pixels; resize to a smaller size")
    if options.width * options.height > MAX_PIXELS:
        raise UserError(f"--width {options.width} x --height {options.height} is more than {MAX_PIXELS} "
                        "pixels; resize to a smaller size")


def _class_spec(options: DatasetOptions) -> ClassSpec:
    colormap: ColorMap | None = None
    if options.colormap is not None:
        if options.label_mode == "palette":
            raise OptionError("[[colormap]] does not apply to [[label_mode]] palette (colours come from the "
                              "labels' palette); drop [[colormap]] or use [[label_mode]] rgb")
        colormap = read_colormap(Path(options.colormap))
    elif options.label_mode == "rgb":
        raise OptionError("[[label_mode]] rgb needs [[colormap]], a file of one 'R G B [name]' line per "
                          "class")
    names = read_class_names(Path(options.classes)) if options.classes is not None else None
    if colormap is not None and names is not None and len(names) != len(colormap.colours):
        raise UserError(f"{options.classes}: {len(names)} class names but {options.colormap} has "
                        f"{len(colormap.colours)} colours; give one name per colour")
    if names is None and colormap is not None:
        names = [name or f"class {index}" for index, name in enumerate(colormap.names)]
    return ClassSpec(None if names is None else tuple(names),
                     None if colormap is None else colormap.colours)


def resolve_options(options: DatasetOptions) -> ResolvedOptions:
    """Check the options against each other and the file system; raise UserError naming the flag."""
    images, labels, train_list = _resolve_sources(options)
    val_images, val_labels, val_percent = _resolve_val(options)
    val_list = None if options.val_list is None else _list_file(options.val_list, "--val-list")
    _check_choice(options.label_mode, LABEL_MODES, "--label-mode")
    _check_choice(options.encoding, ENCODINGS, "--encoding")
    _check_resize(options)
    if options.nearest and options.label_mode != "rgb":
        raise OptionError("[[nearest]] only applies to [[label_mode]] rgb")
    if not 0 <= options.ignore_label <= 255:
        raise OptionError(f"[[ignore_label]] {options.ignore_label} must be 0-255 (labels are 8-bit)")
    workers = options.workers if options.workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        raise UserError(f"--workers {workers} must be at least 1")
    spec = _class_spec(options)
    if spec.count is not None and spec.count > options.ignore_label:
        raise OptionError(f"{spec.count} classes but the ignore value is {options.ignore_label}; class "
                          "indices must stay below it: give a larger [[ignore_label]] or list fewer classes")
    return ResolvedOptions(options, images, labels, val_images, val_labels, val_percent, spec, workers,
                           train_list, val_list)
