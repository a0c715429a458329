"""Segmentation scores from a confusion matrix accumulated over a whole dataset.

The definitions are the FCN paper's (Long et al. 2015, §5): with n_ij the pixels of true class i
predicted as j and t_i the pixels of true class i,

    pixel accuracy = Σ n_ii / Σ t_i
    mean accuracy  = mean_i n_ii / t_i
    IU_i           = n_ii / (t_i + Σ_j n_ji - n_ii)
    mean IU        = mean_i IU_i
    f.w. IU        = Σ_i t_i IU_i / Σ t_i

A ratio whose denominator is zero (a class absent from both ground truth and prediction, or from
the ground truth for accuracy) is NaN and left out of the means, as FCN's score.py and MMSeg do.
Counts are summed over the dataset first and the ratios taken once, never averaged per image.

Label pixels equal to `ignore_label` are skipped. Other label values outside [0, num_classes)
are a broken dataset: they are left out of the matrix but counted in `out_of_range`, so the
report shows them instead of dropping them silently.
"""
import math
from typing import Any

import numpy as np
import torch

from digitslite.errors import UserError

ArrayLike = np.ndarray | torch.Tensor


class ConfusionMatrix:
    """Pixel counts per (ground-truth class, predicted class), rows are the ground truth."""

    def __init__(self, num_classes: int, ignore_label: int | None = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.out_of_range = 0
        self.ignored = 0

    def update(self, prediction: ArrayLike, label: ArrayLike) -> None:
        """Add one batch (any shape) of predicted class indices and ground-truth labels.

        Tensors are counted on their own device; only the small matrix comes back to the host.
        """
        prediction = torch.as_tensor(prediction)
        label = torch.as_tensor(label, device=prediction.device)
        if prediction.shape != label.shape:
            raise UserError(
                f"prediction shape {tuple(prediction.shape)} differs from label shape "
                f"{tuple(label.shape)}: the scored blob must have the label's shape (crop the score "
                "map to the label with a Crop layer, or take the argmax over the class axis first)")
        prediction = prediction.reshape(-1).long()
        label = label.reshape(-1).long()
        n = self.num_classes
        if self.ignore_label is not None:
            ignored = label == self.ignore_label
            self.ignored += int(ignored.sum())
        else:
            ignored = torch.zeros_like(label, dtype=torch.bool)
        in_range = (label >= 0) & (label < n) & ~ignored
        self.out_of_range += int((~in_range & ~ignored).sum())
        prediction = prediction[in_range]
        label = label[in_range]
        if prediction.numel() and (int(prediction.min()) < 0 or int(prediction.max()) >= n):
            raise ValueError(
                f"predicted class indices must lie in [0, {n}), got values from "
                f"{int(prediction.min())} to {int(prediction.max())}")
        counts = torch.bincount(label * n + prediction, minlength=n * n)
        self.matrix += counts.reshape(n, n).cpu().numpy()

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        """Add the counts of `other` (e.g. another worker's shard) into this one; returns self."""
        if (other.num_classes, other.ignore_label) != (self.num_classes, self.ignore_label):
            raise ValueError(
                f"cannot merge a confusion matrix of {other.num_classes} classes (ignore "
                f"{other.ignore_label}) into one of {self.num_classes} classes (ignore {self.ignore_label})")
        self.matrix += other.matrix
        self.out_of_range += other.out_of_range
        self.ignored += other.ignored
        return self

    def summary(self) -> dict[str, Any]:
        """The FCN scores as fractions in [0, 1], JSON-safe: NaN (undefined) becomes None."""
        matrix = self.matrix.astype(np.float64)
        diagonal = np.diag(matrix)
        label_pixels = matrix.sum(axis=1)
        predicted_pixels = matrix.sum(axis=0)
        total = label_pixels.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            per_class_accuracy = diagonal / label_pixels
            per_class_iu = diagonal / (label_pixels + predicted_pixels - diagonal)
            pixel_accuracy = diagonal.sum() / total
        present = label_pixels > 0
        fw_iu = float(np.sum(label_pixels[present] * per_class_iu[present]) / total) if total else math.nan
        return {
            "pixel_accuracy": _json_float(pixel_accuracy),
            "mean_accuracy": _json_float(_nanmean(per_class_accuracy)),
            "mean_iu": _json_float(_nanmean(per_class_iu)),
            "fw_iu": _json_float(fw_iu),
            "per_class_accuracy": [_json_float(value) for value in per_class_accuracy],
            "per_class_iu": [_json_float(value) for value in per_class_iu],
            "out_of_range": self.out_of_range,
            "counts": {
                "pixels": int(total),
                "ignored": self.ignored,
                "label": [int(value) for value in label_pixels],
                "predicted": [int(value) for value in predicted_pixels],
            },
        }


def _nanmean(values: np.ndarray) -> float:
    """Mean of the defined values; NaN when none is defined (no warning, unlike np.nanmean)."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else math.nan


def _json_float(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value
