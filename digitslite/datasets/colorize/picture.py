"""The training set's chroma histogram as a picture, with the kept ab bins marked.

Each cell of the 256 x 256 stored-chroma plane is painted in its own colour (at a fixed lightness)
with a brightness that follows the log of its pixel count, so a glance shows which colours the
photos hold; a cell holding nothing stays dark. Kept bin centres are black dots. The first plane
(a or U) runs left to right, the second (b or V) bottom to top.
"""
import io

import numpy as np
from PIL import Image

from digitslite.datasets.colorize.colour import ColourSpace

SHOWN_LIGHTNESS = 0.7  # share of the lightness range the colours are shown at
EMPTY = 40


def histogram_picture(histogram: np.ndarray, space: ColourSpace, centres: np.ndarray | None) -> bytes:
    """PNG bytes of a (256, 256) histogram indexed [stored first chroma, stored second chroma];
    `centres` are Lab ab bin centres (stored at ab + 128)."""
    stored = np.arange(256, dtype=np.uint8)
    first, second = np.meshgrid(stored, stored, indexing="ij")
    values = space.decode(np.full(first.shape, round(255 * SHOWN_LIGHTNESS), dtype=np.uint8),
                          np.stack([first, second], axis=-1))
    colours = space.to_rgb(values).astype(np.float64)
    density = np.log1p(histogram.astype(np.float64))
    density /= max(float(density.max()), 1.0)
    shade = np.where(histogram[..., None] > 0, 0.25 + 0.75 * density[..., None], 0.0)
    picture = np.where(histogram[..., None] > 0, colours * shade, EMPTY).astype(np.uint8)
    if centres is not None:
        cells = np.clip(np.rint(centres) + 128, 0, 255).astype(int)
        picture[cells[:, 0], cells[:, 1]] = 0
    # rows of the picture are the second plane, highest first; columns the first plane
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(picture.transpose(1, 0, 2)[::-1])).save(buffer, format="PNG")
    return buffer.getvalue()
