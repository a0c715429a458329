"""Inference with a colorization model: each image's lightness in, its colourised picture out.

A colour photo is converted as the dataset converted its training images (its stored lightness is
what the net saw); an image of the dataset's validation split is its stored lightness already, and
has no original. outputs/ gets per image the grey input, the colourised picture, the original (when
known) and, for a net over ab bins, the predicted distribution (float16 .npy) with the stored
lightness, so a page can decode it again at another temperature without running the net.
"""
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from digitslite.engine.colorization.coding import StoredColours
from digitslite.engine.colorization.scores import ColorizationScores, psnr
from digitslite.layout import OUTPUTS_DIR
from digitslite.tasks.colorization import TASK
from digitslite.viz.png import write_rgb_png


def stored_lightness(coding: StoredColours, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(H x W uint8 lightness as the dataset stores it, the image in the colour space or None for a
    grey input) of an input image."""
    if pixels.ndim == 2:
        return pixels, None
    converted = coding.space.from_rgb(pixels)
    lightness, _ = coding.space.encode(converted)
    return lightness, converted


def recolour(coding: StoredColours, lightness: np.ndarray, distribution: np.ndarray,
             temperature: float) -> np.ndarray:
    """The H x W x 3 picture of a stored distribution decoded at `temperature`."""
    chroma = coding.distribution_chroma(distribution.astype(np.float32), temperature)
    return coding.rgb(coding.lightness(lightness[None, None]), chroma[None])[0]


def colourise(coding: StoredColours, predict: Callable[[np.ndarray], dict[str, np.ndarray]],
              items: Iterable[tuple[str, np.ndarray]], outputs: Path, progress: Callable[[int], None],
              named: str = OUTPUTS_DIR) -> dict[str, Any]:
    """Run `predict` (stored lightness -> {blob: array}) over `items` (name, pixels); write the files
    into `outputs` and return results.json's content, whose paths start with `named` (the folder as
    the reader knows it). `progress(count)` is called after each image."""
    method = "classes" if coding.centres is not None else "regression"
    results, scores = [], ColorizationScores()
    for number, (name, pixels) in enumerate(items):
        stem = f"{number:05d}"
        lightness, converted = stored_lightness(coding, pixels)
        output = next(iter(predict(lightness).values()))
        plane = coding.lightness(lightness[None, None])
        if method == "classes":
            stored = output.astype(np.float16)   # decoded as stored, so a page's re-decoding matches
            np.save(outputs / f"{stem}_distribution.npy", stored)
            write_rgb_png(outputs / f"{stem}_lightness.png", np.repeat(lightness[..., None], 3, axis=-1))
            chroma = coding.distribution_chroma(stored.astype(np.float32))
        else:
            chroma = coding.from_unit(output[None])[0]
        colour = coding.rgb(plane, chroma[None])[0]
        grey = _grey(coding.rgb(plane, np.zeros((1, 2, *lightness.shape)))[0])
        entry: dict[str, Any] = {"input": name, "grey": f"{named}/{stem}_grey.png",
                                 "colourised": f"{named}/{stem}_colour.png"}
        write_rgb_png(outputs / f"{stem}_grey.png", grey)
        write_rgb_png(outputs / f"{stem}_colour.png", colour)
        if method == "classes":
            entry.update(distribution=f"{named}/{stem}_distribution.npy",
                         lightness=f"{named}/{stem}_lightness.png")
        if converted is not None:   # a colour input: its own chroma is the truth
            write_rgb_png(outputs / f"{stem}_original.png", pixels)
            entry.update(original=f"{named}/{stem}_original.png", psnr=_finite(psnr(colour, pixels)))
            truth = converted[..., 1:].transpose(2, 0, 1)
            scores.update(chroma[None], truth[None], colour[None], pixels[None])
        results.append(entry)
        progress(number + 1)
    return {"task": TASK.name, "method": method, "temperature": coding.temperature,
            "images": results, "scores": scores.summary() if scores.images else None}


def _grey(rgb: np.ndarray) -> np.ndarray:
    """Zero chroma converted back is grey up to a rounding step per channel; make it exactly grey."""
    return np.repeat(np.rint(rgb.mean(axis=-1, keepdims=True)).astype(np.uint8), 3, axis=-1)


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None
