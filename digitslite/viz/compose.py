"""Panels side by side: input | prediction overlay | ground truth, the segmentation review layout."""
from collections.abc import Iterable, Sequence

import numpy as np

from digitslite.viz.overlay import as_rgb, overlay
from digitslite.viz.palette import colorize

GAP = 4  # white pixels between panels


def side_by_side(panels: Sequence[np.ndarray], gap: int = GAP) -> np.ndarray:
    """Equal-height images (gray or RGB uint8) left to right, separated by `gap` white columns."""
    rgb_panels = [as_rgb(panel) for panel in panels]
    if not rgb_panels:
        raise ValueError("side_by_side needs at least one panel")
    heights = {panel.shape[0] for panel in rgb_panels}
    if len(heights) != 1:
        raise ValueError(f"panels must have one height, got {sorted(heights)}")
    spacer = np.full((rgb_panels[0].shape[0], gap, 3), 255, dtype=np.uint8)
    pieces = [rgb_panels[0]]
    for panel in rgb_panels[1:]:
        pieces += [spacer, panel]
    return np.concatenate(pieces, axis=1)


def comparison(image: np.ndarray, prediction: np.ndarray, palette: np.ndarray,
               ground_truth: np.ndarray | None = None, opacity: float = 0.5,
               hidden_classes: Iterable[int] = ()) -> np.ndarray:
    """input | prediction overlaid on the input | ground truth in class colours (when given)."""
    hidden_classes = tuple(hidden_classes)
    panels = [image, overlay(image, prediction, palette, opacity, hidden_classes=hidden_classes)]
    if ground_truth is not None:
        panels.append(colorize(ground_truth, palette))
    return side_by_side(panels)
