"""Quantized ab: the bins a per-pixel classifier predicts, and the bin of every stored ab pair.

Two choices (`--bins`):
  paper  a grid of step 10 in ab (centres at multiples of 10), keeping only the bins that occur in
         the training images, as Zhang et al. do (313 bins on ImageNet);
  18x18  a fixed 18 x 18 grid spanning a, b in [-110, 110] (the whole sRGB gamut: a -86..98,
         b -108..95), every bin kept whether it occurs or not, as in the Knet slides.
Bins are numbered row-major over (a, b) and a pixel goes to its nearest kept centre (ties to the
lower number). Assignment works on the stored chroma (round(a) + 128, round(b) + 128), so the bin
labels and the chroma targets of one dataset always agree.
"""
import numpy as np

BIN_CHOICES = ("paper", "18x18")
PAPER_STEP = 10.0
PAPER_SPAN = 110.0  # candidate centres -110..110 cover every sRGB colour within half a step
FIXED_COUNT = 18
FIXED_SPAN = 110.0
STORED_LEVELS = 256
_CHUNK = 4096


def candidate_centres(bins: str) -> np.ndarray:
    """(K, 2) ab centres before any is dropped, row-major over (a, b)."""
    if bins == "paper":
        axis = np.arange(-PAPER_SPAN, PAPER_SPAN + PAPER_STEP / 2, PAPER_STEP)
    elif bins == "18x18":
        # symmetric about 0 in floating point, so a value halfway between two centres is an exact tie
        axis = (np.arange(FIXED_COUNT) - (FIXED_COUNT - 1) / 2) * (2 * FIXED_SPAN / FIXED_COUNT)
    else:
        raise ValueError(f"unknown bins {bins!r}; choose one of {', '.join(BIN_CHOICES)}")
    a, b = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([a.ravel(), b.ravel()], axis=1)


def nearest_centre(ab: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre for each (..., 2) ab value (ties to the lower index).

    Minimises |c|^2 / 2 - x.c, which orders centres as |x - c|^2 does, with one matrix product.
    """
    points = np.asarray(ab, dtype=np.float64).reshape(-1, 2)
    centres = np.asarray(centres, dtype=np.float64)
    half_norms = (centres ** 2).sum(axis=1) / 2
    found = np.empty(len(points), dtype=np.int64)
    for start in range(0, len(points), _CHUNK):
        found[start:start + _CHUNK] = np.argmin(half_norms - points[start:start + _CHUNK] @ centres.T, axis=1)
    return found.reshape(np.shape(ab)[:-1])


def stored_ab() -> np.ndarray:
    """(256, 256, 2): the ab value of every stored chroma pair (stored a, stored b)."""
    axis = np.arange(STORED_LEVELS, dtype=np.float64) - 128.0
    a, b = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([a, b], axis=-1)


def stored_lookup(centres: np.ndarray) -> np.ndarray:
    """(256, 256) uint16: the bin of each stored chroma pair, indexed [stored a, stored b]."""
    return nearest_centre(stored_ab(), centres).astype(np.uint16)


def bin_counts(chroma_histogram: np.ndarray, lookup: np.ndarray, count: int) -> np.ndarray:
    """Pixels in each of `count` bins, from a (256, 256) histogram of stored chroma pairs and the
    bins' stored_lookup."""
    return np.bincount(lookup.ravel(), weights=chroma_histogram.ravel(), minlength=count).astype(np.int64)


def kept_centres(bins: str, chroma_histogram: np.ndarray) -> np.ndarray:
    """(Q, 2) centres of the bins a dataset keeps, from its training chroma histogram."""
    centres = candidate_centres(bins)
    if bins == "paper":
        centres = centres[bin_counts(chroma_histogram, stored_lookup(centres), len(centres)) > 0]
    return centres


def label_map(chroma: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """H x W uint16 bin indices of an H x W x 2 uint8 stored chroma image."""
    return lookup[chroma[..., 0], chroma[..., 1]]
