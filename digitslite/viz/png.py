"""PNG files for label maps and pictures, written whole or not at all."""
import io
from pathlib import Path

import numpy as np
from PIL import Image

from digitslite.fileio import write_atomically
from digitslite.viz.overlay import as_rgb


def write_label_png(path: Path, labels: np.ndarray, palette: np.ndarray) -> None:
    """An 8-bit palette PNG (mode P): pixel values are the class indices, the palette shows them in colour.

    This is the VOC / DIGITS label format, so the file can serve as a label again.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or (labels.size and (labels.min() < 0 or labels.max() > 255)):
        raise ValueError("a label PNG holds a 2-D map of class indices 0-255")
    image = Image.fromarray(labels.astype(np.uint8))
    image.putpalette(np.asarray(palette, dtype=np.uint8).reshape(-1).tolist())
    _write_png(path, image)


def write_rgb_png(path: Path, rgb: np.ndarray) -> None:
    """An RGB PNG of an [H, W, 3] uint8 array."""
    _write_png(path, Image.fromarray(as_rgb(rgb)))


def _write_png(path: Path, image: Image.Image) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_atomically(path, buffer.getvalue())
