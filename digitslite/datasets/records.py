"""Caffe Datum records as DIGITS writes them, and their decoding as Caffe's Data layer sees them.

Features: the RGB image PNG/JPEG-encoded (`encoded=True`), or raw uint8 C x H x W in BGR order
(`encoding none`, as DIGITS stores 3-channel data). Labels: a single-channel (mode L) PNG of class
indices, `channels=1`; 16-bit (mode I;16) where there are more than 256 classes (colorization's ab
bins). Colorization's planes are PNGs too: the lightness as mode L, the two chroma planes as mode LA.
Decoding gives C x H x W in Caffe's order (uint8, uint16 for 16-bit labels): BGR for colour images,
since Caffe decodes with OpenCV. Caffe itself decodes PNGs to 8 bits: 16-bit labels and
2-channel planes are read by digitslite's engine only.
"""
import io
from collections.abc import Callable

import numpy as np
from PIL import Image

from digitslite.caffe import caffe_pb2

JPEG_QUALITY = 90  # DIGITS' jpg setting
# Where a decoded record is written: (shape, dtype) -> a C-ordered array of that shape
Allocate = Callable[[tuple[int, ...], np.dtype], np.ndarray]
# zlib level 1 encodes photographs about 3x faster than Pillow's default 6 for about 1% more bytes;
# label maps are small and compress far better at the default, so they keep it.
SAVE_ARGUMENTS = {"png": {"format": "PNG", "compress_level": 1},
                  "jpg": {"format": "JPEG", "quality": JPEG_QUALITY},
                  "label": {"format": "PNG"}}


def _encoded(image: Image.Image, kind: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **SAVE_ARGUMENTS[kind])
    return buffer.getvalue()


def record_key(position: int) -> bytes:
    """DIGITS' key: the record's position in its split, `%09d`, shared by features and labels."""
    return b"%09d" % position


def feature_datum(image: Image.Image, encoding: str) -> bytes:
    """A serialized Datum holding an RGB image, encoded as `encoding` (png, jpg or none)."""
    datum = caffe_pb2.Datum(channels=3, height=image.height, width=image.width, label=0)
    if encoding == "none":
        datum.data = np.ascontiguousarray(np.asarray(image)[:, :, ::-1].transpose(2, 0, 1)).tobytes()
    else:
        datum.data = _encoded(image, encoding)
        datum.encoded = True
    return datum.SerializeToString()


def planes_datum(planes: np.ndarray) -> bytes:
    """A serialized Datum holding H x W uint8 or uint16 values, or H x W x 2 uint8, as a lossless PNG
    (mode L, I;16 or LA)."""
    height, width = planes.shape[:2]
    datum = caffe_pb2.Datum(channels=1 if planes.ndim == 2 else planes.shape[2], height=height, width=width,
                            label=0, encoded=True, data=_encoded(Image.fromarray(planes), "label"))
    return datum.SerializeToString()


def label_datum(indices: np.ndarray) -> bytes:
    """A serialized Datum holding an H x W index map (uint8, or uint16 beyond 256 classes)."""
    return planes_datum(indices)


def datum_array(serialized: bytes, allocate: Allocate | None = None) -> np.ndarray:
    """C x H x W uint8 pixels of a serialized Datum, colour in BGR order (Caffe's view), written into
    `allocate(shape, dtype)` when given (a training stream's shared-memory slot).

    A decoded colour image comes out of Pillow one plane at a time, blue first, into one C-ordered
    block: Pillow packs a single band about 4x faster than interleaved RGB, so this costs less
    than `np.asarray` of the image alone, and needs no transposing copy later.
    """
    datum = caffe_pb2.Datum.FromString(serialized)
    if not datum.encoded:
        pixels = np.frombuffer(datum.data, dtype=np.uint8).reshape(datum.channels, datum.height, datum.width)
        return _written(pixels, allocate)
    with Image.open(io.BytesIO(datum.data)) as image:
        if image.mode in ("L", "P", "I;16"):
            return _written(np.asarray(image)[None], allocate)
        if image.mode == "LA":
            return _written(np.asarray(image).transpose(2, 0, 1), allocate)
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        planes = (allocate or np.empty)((3, rgb.height, rgb.width), np.dtype(np.uint8))
        for plane, band in zip(planes, "BGR", strict=True):
            plane[...] = np.frombuffer(rgb.tobytes("raw", band), dtype=np.uint8).reshape(plane.shape)
        return planes


def _written(pixels: np.ndarray, allocate: Allocate | None) -> np.ndarray:
    """`pixels` as they are, or copied into `allocate`'s array."""
    if allocate is None:
        return pixels
    out = allocate(pixels.shape, pixels.dtype)
    np.copyto(out, pixels)
    return out
