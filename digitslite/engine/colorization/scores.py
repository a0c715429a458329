"""Scores of colourised pictures against the originals, summed over a dataset.

- ab error: the Euclidean distance in ab between predicted and true colour, per pixel; its mean, and
  Zhang et al.'s "raw accuracy": the share of pixels whose error is at most t, for t = 0, 1, ..., 150,
  averaged over the 151 thresholds (the area under that curve, normalised to [0, 1]).
- PSNR of the RGB picture (8-bit, peak 255), per image, averaged over the images.
- colourfulness (Hasler and Suesstrunk 2003) of the prediction and of the truth, averaged over the
  images: with rg = R - G and yb = (R + G)/2 - B,
  M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2). A grey picture scores 0, so a
  model that paints everything grey shows at once.

The error histogram keeps ceil(error) per pixel (errors beyond 150 in one overflow bin), so shares
are exact for the integer thresholds and shards from several ranks merge by adding counts.
"""
import math
from typing import Any

import numpy as np

LARGEST_THRESHOLD = 150
PEAK = 255.0
COLOURFULNESS_MEAN_WEIGHT = 0.3


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk's M of one [H, W, 3] RGB picture in 0..255."""
    rgb = np.asarray(rgb, dtype=np.float64)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg, yb = red - green, (red + green) / 2 - blue
    spread = math.hypot(rg.std(), yb.std())
    return spread + COLOURFULNESS_MEAN_WEIGHT * math.hypot(rg.mean(), yb.mean())


def psnr(predicted: np.ndarray, truth: np.ndarray) -> float:
    """10 log10(255^2 / MSE) over every value of one RGB picture; identical pictures give inf."""
    error = np.mean(np.square(np.asarray(predicted, np.float64) - np.asarray(truth, np.float64)))
    return math.inf if error == 0 else 10 * math.log10(PEAK ** 2 / error)


class ColorizationScores:
    """Running sums of the scores above."""

    def __init__(self) -> None:
        self.histogram = np.zeros(LARGEST_THRESHOLD + 2, dtype=np.int64)
        self.error_sum = 0.0
        self.psnr_sum = 0.0
        self.finite_psnr_images = 0
        self.colourfulness_sum = 0.0
        self.truth_colourfulness_sum = 0.0
        self.images = 0

    @property
    def pixels(self) -> int:
        return int(self.histogram.sum())

    def update(self, predicted_ab: np.ndarray, true_ab: np.ndarray,
               predicted_rgb: np.ndarray, true_rgb: np.ndarray) -> None:
        """Add a batch: ab as [N, 2, H, W], RGB as [N, H, W, 3] in 0..255."""
        error = np.hypot(*np.moveaxis(np.asarray(predicted_ab, np.float64) - np.asarray(true_ab, np.float64),
                                      1, 0))
        self.error_sum += float(error.sum())
        bins = np.minimum(np.ceil(error), LARGEST_THRESHOLD + 1).astype(np.int64)
        self.histogram += np.bincount(bins.reshape(-1), minlength=LARGEST_THRESHOLD + 2)
        for predicted, truth in zip(predicted_rgb, true_rgb, strict=True):
            value = psnr(predicted, truth)
            if math.isfinite(value):
                self.psnr_sum += value
                self.finite_psnr_images += 1
            self.colourfulness_sum += colourfulness(predicted)
            self.truth_colourfulness_sum += colourfulness(truth)
            self.images += 1

    def merge(self, other: "ColorizationScores") -> "ColorizationScores":
        """Add another shard's sums into this one; returns self."""
        self.histogram += other.histogram
        for name in ("error_sum", "psnr_sum", "finite_psnr_images", "colourfulness_sum",
                     "truth_colourfulness_sum", "images"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def within(self) -> np.ndarray:
        """The share of pixels with error <= t, for t = 0..150."""
        return np.cumsum(self.histogram[:LARGEST_THRESHOLD + 1]) / max(self.pixels, 1)

    def summary(self) -> dict[str, Any]:
        """The scores, JSON-safe (None where nothing was counted)."""
        pixels, images = self.pixels, self.images
        return {
            "ab_error": self.error_sum / pixels if pixels else None,
            "ab_auc": float(self.within().mean()) if pixels else None,
            "psnr": self.psnr_sum / self.finite_psnr_images if self.finite_psnr_images else None,
            "colourfulness": self.colourfulness_sum / images if images else None,
            "truth_colourfulness": self.truth_colourfulness_sum / images if images else None,
        }
