"""The mean image as Caffe's `mean.binaryproto`: a BlobProto 1 x C x H x W of floats in BGR order.

Written with the legacy num/channels/height/width fields, as DIGITS writes it; read from either
`shape` or the legacy fields, as Caffe reads it.
"""
from pathlib import Path

import numpy as np

from digitslite.caffe.caffemodel import array_to_blob, read_blob_file
from digitslite.errors import UserError


def mean_blob(mean_bgr: np.ndarray) -> bytes:
    """Serialize a C x H x W mean (BGR) as a 1 x C x H x W BlobProto."""
    return array_to_blob(mean_bgr[None].astype(np.float32), legacy_4d=True).SerializeToString()


def read_mean_file(path: Path) -> np.ndarray:
    """The C x H x W float32 mean stored in a BlobProto file."""
    mean = read_blob_file(path, "the mean file", "give a mean.binaryproto")
    while mean.ndim > 3 and mean.shape[0] == 1:
        mean = mean[0]
    if mean.ndim != 3:
        raise UserError(f"{path}: the blob has shape {mean.shape}; a mean file holds one C x H x W image")
    return mean.astype(np.float32)


RECENT_LIMIT = 257  # uint8 images whose sum a uint16 holds: 257 x 255 = 65535


class MeanAccumulator:
    """Exact integer sum of H x W x 3 RGB images of one size; a second size switches the mean off.

    Each encoder process keeps its own and the parent merges them once at the end, so the mean
    costs no traffic per image and comes out the same however the images were shared out. Images
    are added into a uint16 sum, folded into the uint64 total every RECENT_LIMIT images: adding
    into 16 bits moves a quarter of the memory that adding into 64 bits does.
    """

    def __init__(self) -> None:
        self.total: np.ndarray | None = None  # uint64 sum of the folded images
        self.count = 0
        self.uniform = True
        self._recent: np.ndarray | None = None  # uint16 sum of the images added since the last fold
        self._recent_count = 0

    def add(self, pixels: np.ndarray) -> None:
        if not self._fits(pixels.shape):
            return
        if self._recent is None:
            self._recent = np.zeros(pixels.shape, dtype=np.uint16)
        np.add(self._recent, pixels, out=self._recent)
        self._recent_count += 1
        if self._recent_count == RECENT_LIMIT:
            self._fold()

    def merge(self, other: "MeanAccumulator") -> None:
        other._fold()
        if not other.uniform:
            self._switch_off()
        elif other.total is not None and self._fits(other.total.shape):
            if self.total is None:
                self.total = np.zeros(other.total.shape, dtype=np.uint64)
            self.total += other.total
            self.count += other.count

    def _fits(self, shape: tuple[int, ...]) -> bool:
        """Whether images of `shape` can be summed here; a second shape switches the mean off."""
        if not self.uniform:
            return False
        known = self.total if self.total is not None else self._recent
        if known is not None and known.shape != shape:
            self._switch_off()
            return False
        return True

    def _switch_off(self) -> None:
        self.uniform, self.total, self._recent, self._recent_count = False, None, None, 0

    def _fold(self) -> None:
        if not self._recent_count:
            return
        if self.total is None:
            self.total = np.zeros(self._recent.shape, dtype=np.uint64)
        self.total += self._recent
        self.count += self._recent_count
        self._recent.fill(0)
        self._recent_count = 0

    def mean_bgr(self) -> np.ndarray | None:
        """C x H x W BGR mean, or None when sizes differed or nothing was added."""
        self._fold()
        if not self.uniform or self.total is None or not self.count:
            return None
        return (self.total / self.count)[:, :, ::-1].transpose(2, 0, 1)
