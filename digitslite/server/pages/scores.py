"""Per-image scores for the inference viewer: pixel accuracy and mean IU of one prediction against
its ground truth (the inference job reports only the totals over all images)."""
import numpy as np

IGNORE_LABEL = 255


def image_scores(truth: np.ndarray, prediction: np.ndarray) -> dict[str, float] | None:
    """FCN's pixel accuracy and mean IU over the classes present in the ground truth; None when the
    maps differ in size or no pixel is labelled."""
    if truth.shape != prediction.shape:
        return None
    keep = truth != IGNORE_LABEL
    if not keep.any():
        return None
    size = int(max(truth[keep].max(), prediction.max())) + 1
    pairs = truth[keep].astype(np.int64) * size + prediction[keep]
    matrix = np.bincount(pairs, minlength=size * size).reshape(size, size).astype(np.float64)
    hits = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - hits
    present = matrix.sum(1) > 0
    return {"pixel_accuracy": float(hits.sum() / matrix.sum()),
            "mean_iu": float((hits[present] / union[present]).mean())}
