"""Caffe Datum records as DIGITS writes them, and their decoding as Caffe's Data layer sees them.

Features: the RGB image PNG/JPEG-encoded (`encoded=True`), or raw uint8 C x H x W in BGR order
(`encoding none`, as DIGITS stores 3-channel data). Labels: a single-channel (mode L) PNG of class
indices, `channels=1`. Decoding gives C x H x W uint8 in Caffe's order: BGR for colour images,
since Caffe decodes with OpenCV.
"""
import io

import numpy as np
from PIL import Image

from digitslite.caffe import caffe_pb2

JPEG_QUALITY = 90  # DIGITS' jpg setting
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


def label_datum(indices: np.ndarray) -> bytes:
    """A serialized Datum holding an H x W uint8 index map as a mode-L PNG."""
    height, width = indices.shape
    datum = caffe_pb2.Datum(channels=1, height=height, width=width, label=0, encoded=True,
                            data=_encoded(Image.fromarray(indices), "label"))
    return datum.SerializeToString()


def datum_array(serialized: bytes) -> np.ndarray:
    """C x H x W uint8 pixels of a serialized Datum, colour in BGR order (Caffe's view).

    Decoded colour images come back as a strided view of the decoded H x W x RGB buffer: the
    caller's conversion to float makes the one copy that is needed.
    """
    datum = caffe_pb2.Datum.FromString(serialized)
    if not datum.encoded:
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(datum.channels, datum.height, datum.width)
    with Image.open(io.BytesIO(datum.data)) as image:
        if image.mode in ("L", "P"):
            return np.asarray(image, dtype=np.uint8)[None]
        pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    return pixels[:, :, ::-1].transpose(2, 0, 1)
