"""Predictions drawn over the input image: filled class colours or class outlines, blended."""
from collections.abc import Iterable

import numpy as np

from digitslite.viz.palette import colorize


def contours(labels: np.ndarray) -> np.ndarray:
    """Boolean [H, W] mask of the pixels that touch another class (4-neighbourhood).

    Both sides of a boundary are marked, so every class keeps its own coloured edge; the image's
    border is no boundary.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-D map of class indices, got shape {labels.shape}")
    edge = np.zeros(labels.shape, dtype=bool)
    rows_differ = labels[1:, :] != labels[:-1, :]
    edge[1:, :] |= rows_differ
    edge[:-1, :] |= rows_differ
    columns_differ = labels[:, 1:] != labels[:, :-1]
    edge[:, 1:] |= columns_differ
    edge[:, :-1] |= columns_differ
    return edge


def as_rgb(image: np.ndarray) -> np.ndarray:
    """An [H, W, 3] uint8 view of a grayscale [H, W] or RGB image (alpha dropped)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return image[:, :, :3]
    raise ValueError(f"images must be [H, W] or [H, W, 3], got shape {image.shape}")


def overlay(image: np.ndarray, labels: np.ndarray, palette: np.ndarray, opacity: float = 0.5,
            outline_only: bool = False, hidden_classes: Iterable[int] = ()) -> np.ndarray:
    """The input with class colours blended in: out = (1 - opacity) * image + opacity * colour.

    Pixels of `hidden_classes` (e.g. 0, background, as DIGITS does) keep the input; with
    `outline_only` only the class boundaries (`contours`) are painted. Rounded to the nearest
    integer, halves up.
    """
    rgb = as_rgb(image)
    labels = np.asarray(labels)
    if rgb.shape[:2] != labels.shape:
        raise ValueError(f"image of {rgb.shape[0]} rows x {rgb.shape[1]} columns and label map of shape "
                         f"{labels.shape} differ; the labels must cover the image pixel for pixel")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must lie in [0, 1], got {opacity}")
    painted = ~np.isin(labels, list(hidden_classes))
    if outline_only:
        painted &= contours(labels)
    colours = colorize(labels, palette)
    blended = np.floor(rgb * (1.0 - opacity) + colours * opacity + 0.5).astype(np.uint8)
    return np.where(painted[:, :, None], blended, rgb)
