"""DIGITS' resize modes, applied to an image and its label together.

squash:    stretch to width x height, ignoring the aspect ratio.
crop:      scale until the image covers the target, then cut the centre.
fill:      scale until the image fits inside the target, then pad (image: random noise, as DIGITS
           does; label: the ignore value, so padding never counts as a class).
half_crop: scale halfway between (by the mean of the two ratios), then cut the too-long side and
           pad the too-short one.
Images are resampled bilinearly; labels always by nearest neighbour, so no new class appears.
"""
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class ResizeSpec:
    mode: str
    width: int
    height: int


def _scale(spec: ResizeSpec, width: int, height: int) -> float:
    width_ratio, height_ratio = spec.width / width, spec.height / height
    if spec.mode == "crop":
        return max(width_ratio, height_ratio)
    if spec.mode == "fill":
        return min(width_ratio, height_ratio)
    if spec.mode == "half_crop":
        return 2.0 / (width / spec.width + height / spec.height)
    raise ValueError(f"unknown resize mode {spec.mode!r}")


def _window(source: int, target: int) -> tuple[slice, slice]:
    """Centre alignment along one axis: (slice of the source, slice of the target) that overlap."""
    if source >= target:
        start = (source - target) // 2
        return slice(start, start + target), slice(0, target)
    start = (target - source) // 2
    return slice(0, source), slice(start, start + source)


def resize_pair(image: Image.Image, label: np.ndarray, spec: ResizeSpec, ignore_label: int,
                rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """Return the RGB image and the index label at spec.width x spec.height."""
    target = (spec.width, spec.height)
    label_image = Image.fromarray(label)
    if spec.mode == "squash":
        return (image.resize(target, Image.Resampling.BILINEAR),
                np.asarray(label_image.resize(target, Image.Resampling.NEAREST)))
    scale = _scale(spec, *image.size)
    scaled = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    pixels = np.asarray(image.resize(scaled, Image.Resampling.BILINEAR))
    indices = np.asarray(label_image.resize(scaled, Image.Resampling.NEAREST))
    rows_from, rows_to = _window(scaled[1], spec.height)
    cols_from, cols_to = _window(scaled[0], spec.width)
    padded = scaled[0] < spec.width or scaled[1] < spec.height
    canvas = (rng.integers(0, 256, (spec.height, spec.width, 3), dtype=np.uint8) if padded
              else np.empty((spec.height, spec.width, 3), dtype=np.uint8))
    canvas[rows_to, cols_to] = pixels[rows_from, cols_from]
    label_canvas = np.full((spec.height, spec.width), ignore_label, dtype=np.uint8)
    label_canvas[rows_to, cols_to] = indices[rows_from, cols_from]
    return Image.fromarray(canvas), label_canvas
