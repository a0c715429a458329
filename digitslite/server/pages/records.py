"""Records of a dataset's LMDBs as browser images: the explore gallery, and the validation inputs and
ground truth of inference results.

py-lmdb refuses to open one environment twice in a process, and the server answers from several
threads, so the read-only environments live in one cache behind one lock (reads take milliseconds).
"""
import io
import threading
from collections import OrderedDict
from pathlib import Path

import lmdb
import numpy as np
from PIL import Image

from digitslite.caffe import caffe_pb2
from digitslite.datasets.records import datum_array, record_key
from digitslite.viz.palette import colorize, extend_palette

PARTS = ("features", "labels", "chroma")
OPEN_ENVIRONMENTS = 16
_lock = threading.Lock()
_environments: OrderedDict[Path, lmdb.Environment] = OrderedDict()


def _environment(path: Path) -> lmdb.Environment:
    """Called with the lock held; the least recently used environment is closed beyond the limit."""
    env = _environments.pop(path, None)
    if env is None:
        env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, subdir=True)
    _environments[path] = env
    while len(_environments) > OPEN_ENVIRONMENTS:
        _environments.popitem(last=False)[1].close()
    return env


def read_record(dataset_dir: Path, stage: str, part: str, position: int) -> bytes | None:
    """The serialized Datum at `position` of a split, or None when there is none."""
    path = dataset_dir / f"{stage}_db" / part
    if part not in PARTS or not path.is_dir():
        return None
    with _lock, _environment(path).begin() as txn:
        return txn.get(record_key(position))


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def image_bytes(serialized: bytes) -> bytes:
    """A feature record as PNG or JPEG bytes: the stored encoding when there is one."""
    datum = caffe_pb2.Datum.FromString(serialized)
    if datum.encoded:
        return datum.data
    pixels = datum_array(serialized)
    return png(pixels[0] if pixels.shape[0] == 1 else np.ascontiguousarray(pixels[::-1].transpose(1, 2, 0)))


def label_indices(serialized: bytes) -> np.ndarray:
    return datum_array(serialized)[0]


def label_png(serialized: bytes, palette: np.ndarray | None) -> bytes:
    """A label record as a PNG: class colours with a palette, else the class indices as gray values."""
    indices = label_indices(serialized)
    return png(indices if palette is None else colorize(indices, palette))


def painting_palette(info: dict) -> np.ndarray:
    """The colours a dataset.json gives its classes, and its ignore colour at the ignore value."""
    palette = extend_palette(info.get("palette") or [])
    ignore = info.get("ignore_label")
    if ignore is not None and info.get("ignore_colour"):
        palette[ignore] = info["ignore_colour"]
    return palette


def image_mimetype(data: bytes) -> str:
    return "image/jpeg" if data.startswith(b"\xff\xd8") else "image/png"
