"""Class colours: the PASCAL VOC palette, palettes from dataset.json, and label maps painted with them.

A palette is a uint8 array of shape [K, 3], row k the RGB colour of class k. Palettes used for
painting cover all 256 label values, so that the ignore value 255 (VOC's void border) and any
stray index still get a colour instead of an error.
"""
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from digitslite.datasets.colormap import default_palette
from digitslite.errors import UserError

LABEL_VALUES = 256  # 8-bit label PNGs


def voc_palette(count: int = LABEL_VALUES) -> np.ndarray:
    """The PASCAL VOC colour table (class 1 (128, 0, 0), class 15 (192, 128, 128), 255 (224, 224, 192))."""
    return np.array(default_palette(count), dtype=np.uint8).reshape(count, 3)


def extend_palette(colours: Sequence[Sequence[int]], count: int = LABEL_VALUES) -> np.ndarray:
    """`colours` for the first classes, then the VOC table's colours for the remaining indices."""
    given = np.asarray(colours, dtype=np.int64).reshape(-1, 3)
    if given.size and (given.min() < 0 or given.max() > 255):
        raise ValueError("palette colours must be integers 0-255")
    if len(given) > count:
        raise ValueError(f"{len(given)} colours do not fit a palette of {count} entries")
    palette = voc_palette(count)
    palette[: len(given)] = given
    return palette


def read_dataset_classes(path: Path) -> tuple[list[str], np.ndarray]:
    """Class names and the full painting palette recorded in a dataset's dataset.json."""
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read the dataset description ({exc}); "
                        "give the dataset.json written by `digitslite dataset create`") from exc
    names = info.get("classes") if isinstance(info, dict) else None
    colours = info.get("palette") if isinstance(info, dict) else None
    if not isinstance(names, list) or not isinstance(colours, list):
        raise UserError(f"{path}: no 'classes' and 'palette' lists; "
                        "give the dataset.json written by `digitslite dataset create`")
    try:
        palette = extend_palette(colours)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{path}: 'palette' is not a list of [R, G, B] colours 0-255 ({exc}); "
                        "recreate the dataset or fix the entry") from exc
    return [str(name) for name in names], palette


def colorize(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """An [H, W, 3] uint8 RGB image with each pixel the palette colour of its class index."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-D map of class indices, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(palette)):
        raise ValueError(f"class indices {labels.min()}..{labels.max()} fall outside the palette's "
                         f"{len(palette)} colours; extend the palette (extend_palette)")
    return np.asarray(palette, dtype=np.uint8)[labels.astype(np.intp)]
