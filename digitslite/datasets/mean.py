"""The mean image as Caffe's `mean.binaryproto`: a BlobProto 1 x C x H x W of floats in BGR order.

Written with the legacy num/channels/height/width fields, as DIGITS writes it; read from either
`shape` or the legacy fields, as Caffe reads it.
"""
from pathlib import Path

import numpy as np

from digitslite.caffe import caffe_pb2
from digitslite.caffe.caffemodel import array_to_blob, blob_to_array
from digitslite.errors import UserError


def mean_blob(mean_bgr: np.ndarray) -> bytes:
    """Serialize a C x H x W mean (BGR) as a 1 x C x H x W BlobProto."""
    return array_to_blob(mean_bgr[None].astype(np.float32), legacy_4d=True).SerializeToString()


def read_mean_file(path: Path) -> np.ndarray:
    """The C x H x W float32 mean stored in a BlobProto file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the mean file ({exc.strerror}); "
                        "give a mean.binaryproto") from exc
    try:
        mean = blob_to_array(caffe_pb2.BlobProto.FromString(data))
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from exc
    except Exception as exc:  # protobuf raises DecodeError, whose base class differs by backend
        raise UserError(f"{path}: not a BlobProto ({exc}); give a Caffe mean.binaryproto") from exc
    while mean.ndim > 3 and mean.shape[0] == 1:
        mean = mean[0]
    if mean.ndim != 3:
        raise UserError(f"{path}: the blob has shape {mean.shape}; a mean file holds one C x H x W image")
    return mean.astype(np.float32)


class MeanAccumulator:
    """Exact integer sum of H x W x 3 RGB images of one size; a second size switches the mean off.

    Each encoder process keeps its own and the parent merges them once at the end, so the mean
    costs no traffic per image and comes out the same however the images were shared out.
    """

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.count = 0
        self.uniform = True

    def add(self, pixels: np.ndarray) -> None:
        self._add(pixels, 1)

    def merge(self, other: "MeanAccumulator") -> None:
        if not other.uniform:
            self.uniform, self.total = False, None
        elif other.total is not None:
            self._add(other.total, other.count)

    def _add(self, total: np.ndarray, count: int) -> None:
        if not self.uniform:
            return
        if self.total is None:
            self.total = np.zeros(total.shape, dtype=np.uint64)
        elif self.total.shape != total.shape:
            self.uniform, self.total = False, None
            return
        self.total += total
        self.count += count

    def mean_bgr(self) -> np.ndarray | None:
        """C x H x W BGR mean, or None when sizes differed or nothing was added."""
        if not self.uniform or self.total is None or not self.count:
            return None
        return (self.total / self.count)[:, :, ::-1].transpose(2, 0, 1)
