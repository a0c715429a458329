"""Scoring a colorization net's test passes: the colours it predicts against the dataset's.

Method 1 nets score ab bins with an InfogainLoss (bottoms: scores, bin labels); method 2 nets
regress the chroma with EuclideanLosses (bottoms: prediction, target), of which the first is the
unblurred one. The lightness comes from the net's image input. How stored values become Lab and
RGB is the dataset's coding (ColourCoding).
"""
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from digitslite.engine.colorization.coding import stored_colours
from digitslite.engine.colorization.scores import ColorizationScores
from digitslite.engine.net import CaffeNet
from digitslite.errors import UserError


class ColourCoding(Protocol):
    """How a colorization dataset stores colour (digitslite.engine.colorization.coding)."""

    def lightness(self, data: np.ndarray) -> np.ndarray:
        """[N, 1, H, W] image input -> [N, H, W] lightness of the colour space."""

    def truth_chroma(self, label: np.ndarray) -> np.ndarray:
        """[N, 1 or 2, H, W] stored target -> [N, 2, H, W] chroma."""

    def predicted_chroma(self, output: np.ndarray) -> np.ndarray:
        """[N, K or 2, H, W] net output (bin scores or chroma in [0, 1]) -> [N, 2, H, W] chroma."""

    def rgb(self, lightness: np.ndarray, chroma: np.ndarray) -> np.ndarray:
        """[N, H, W] lightness and [N, 2, H, W] chroma -> [N, H, W, 3] RGB in 0..255."""


class ColorizationTally:
    """ColorizationScores over a test pass; fields: the scores' summary."""

    def __init__(self, probe: "ColorizationProbe") -> None:
        self.probe = probe
        self.scores = ColorizationScores()

    def update(self, outputs: Mapping[str, torch.Tensor]) -> None:
        coding, probe = self.probe.coding, self.probe
        lightness = coding.lightness(_numpy(outputs[probe.image]))
        predicted = coding.predicted_chroma(_numpy(outputs[probe.prediction]))
        truth = coding.truth_chroma(_numpy(outputs[probe.target]))
        self.scores.update(predicted, truth, coding.rgb(lightness, predicted), coding.rgb(lightness, truth))

    def merge(self, other: "ColorizationTally") -> "ColorizationTally":
        self.scores.merge(other.scores)
        return self

    def fields(self) -> dict[str, Any]:
        return self.scores.summary()


@dataclass(frozen=True)
class ColorizationProbe:
    """The blobs a colorization test net is scored from."""

    layer: str
    image: str
    prediction: str
    target: str
    coding: ColourCoding

    @property
    def keep(self) -> tuple[str, ...]:
        return (self.image, self.prediction, self.target)

    def tally(self) -> ColorizationTally:
        return ColorizationTally(self)


def colorization_probe(net: CaffeNet, info: Mapping[str, Any]) -> ColorizationProbe:
    """The probe of colorization's task record: scores in the colour coding of the dataset.json `info`."""
    coding = stored_colours(info)
    if coding is None:
        raise UserError("a colorization net is scored with its dataset's colour coding; the dataset.json "
                        "given has none: train on a dataset made with --task colorization")
    return coding_probe(net, coding)


def coding_probe(net: CaffeNet, coding: ColourCoding) -> ColorizationProbe:
    """The first InfogainLoss (method 1) or EuclideanLoss (method 2) of `net`, and its image input."""
    if not net.input_names:
        raise UserError(f"net {net.name!r} has no image input to take the lightness from")
    for layer in net.net_param.layer:
        if layer.type in ("InfogainLoss", "EuclideanLoss") and len(layer.bottom) >= 2:
            return ColorizationProbe(layer.name, net.input_names[0], layer.bottom[0], layer.bottom[1], coding)
    raise UserError(f"net {net.name!r} trains on a colorization dataset but has neither an InfogainLoss "
                    "(ab bins) nor a EuclideanLoss (chroma) to score; start from colorize_classes or "
                    "colorize_hypercolumns")


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()
