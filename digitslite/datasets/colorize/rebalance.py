"""Class rebalancing for ab bins (Zhang et al. 2016, eq. 3-4) and the InfogainLoss matrix.

p~ is the empirical bin distribution smoothed by a Gaussian of sigma 5 ab units (a discrete
convolution over the kept bin centres, renormalised), w ~ 1 / ((1 - lambda) p~ + lambda / Q) with
lambda 0.5, scaled so that E_p~[w] = sum_q p~_q w_q = 1. InfogainLoss with H = diag(w) weighs each
pixel's log loss by the weight of its true bin.
"""
import numpy as np

from digitslite.caffe.caffemodel import array_to_blob

SIGMA = 5.0
LAMBDA = 0.5


def smoothed_distribution(counts: np.ndarray, centres: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """The empirical distribution of `counts` over `centres` (Q, 2), Gaussian-smoothed in ab."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() <= 0:
        raise ValueError("no pixels to build a bin distribution from")
    squared = ((centres[:, None, :] - centres[None, :, :]) ** 2).sum(axis=-1)
    smoothed = np.exp(-squared / (2.0 * sigma ** 2)) @ (counts / counts.sum())
    return smoothed / smoothed.sum()


def rebalancing_weights(distribution: np.ndarray, mix: float = LAMBDA) -> np.ndarray:
    """w_q proportional to 1 / ((1 - mix) p_q + mix / Q), normalised to expectation 1 under p."""
    distribution = np.asarray(distribution, dtype=np.float64)
    weights = 1.0 / ((1.0 - mix) * distribution + mix / len(distribution))
    return weights / float(distribution @ weights)


def infogain_blob(weights: np.ndarray) -> bytes:
    """H = diag(weights) as Caffe's InfogainLoss reads it: a 1 x 1 x Q x Q BlobProto."""
    matrix = np.diag(np.asarray(weights, dtype=np.float32))
    return array_to_blob(matrix[None, None], legacy_4d=True).SerializeToString()
