"""How a colorization dataset stores colour, read back: the coding the probe and inference decode with.

The facts are the dataset's (digitslite.datasets.colorize): each plane is stored in 8 bits by one
affine map of its colour space, so a stored value / 255 is the regression target in [0, 1]; method 1
labels are indices into the dataset's kept ab bin centres.
"""
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from digitslite.datasets.colorize.colour import COLOUR_SPACES, ColourSpace
from digitslite.engine.colorization.decode import DEFAULT_TEMPERATURE, annealed_mean, softmax
from digitslite.errors import UserError
from digitslite.tasks.colorization import TASK


@dataclass(frozen=True)
class StoredColours:
    """A dataset's colour space and (method 1) bin centres; decodes net blobs into colours."""

    space: ColourSpace
    centres: np.ndarray | None = field(default=None, compare=False)   # [K, 2]; None: chroma regression
    temperature: float = DEFAULT_TEMPERATURE

    def lightness(self, data: np.ndarray) -> np.ndarray:
        """[N, 1, H, W] stored lightness -> [N, H, W] in the space's units."""
        return self.space.ranges[0].decode(data[:, 0])

    def from_unit(self, values: np.ndarray) -> np.ndarray:
        """[N, 2, H, W] chroma scaled to [0, 1] (stored / 255, or a Sigmoid output) -> the space's units."""
        return np.stack([self.space.ranges[1].decode(values[:, 0] * 255.0),
                         self.space.ranges[2].decode(values[:, 1] * 255.0)], axis=1)

    def truth_chroma(self, label: np.ndarray) -> np.ndarray:
        """Bin labels [N, 1, H, W] -> their centres; [N, 2, H, W] targets in [0, 1] -> chroma."""
        if label.shape[1] == 1:
            if self.centres is None:
                raise UserError("the labels are ab bins but the dataset names no bin centres")
            return np.moveaxis(self.centres[label[:, 0].astype(np.int64)], -1, 1)
        return self.from_unit(label)

    def predicted_chroma(self, output: np.ndarray) -> np.ndarray:
        """Bin scores [N, K, H, W] -> the annealed mean; [N, 2, H, W] in [0, 1] -> chroma."""
        if self.centres is not None and output.shape[1] == len(self.centres):
            return np.stack([self.distribution_chroma(softmax(scores)) for scores in output])
        return self.from_unit(output)

    def distribution_chroma(self, distribution: np.ndarray, temperature: float | None = None) -> np.ndarray:
        """A deploy net's bin distribution [K, H, W] -> [2, H, W] chroma by the annealed mean."""
        if self.centres is None:
            raise UserError("this dataset's networks regress chroma; they output no bin distribution")
        chosen = self.temperature if temperature is None else temperature
        return annealed_mean(distribution, self.centres, chosen)

    def rgb(self, lightness: np.ndarray, chroma: np.ndarray) -> np.ndarray:
        """[N, H, W] lightness and [N, 2, H, W] chroma -> [N, H, W, 3] uint8 sRGB. Predicted colours
        outside the gamut are clipped (scikit-image's warning about it would flood the job logs)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*negative Z values", category=UserWarning)
            return self._rgb(lightness, chroma)

    def _rgb(self, lightness: np.ndarray, chroma: np.ndarray) -> np.ndarray:
        return np.stack([self.space.to_rgb(np.concatenate([plane[None], ab]).transpose(1, 2, 0))
                         for plane, ab in zip(lightness, chroma, strict=True)])


def stored_colours(info: dict[str, Any]) -> StoredColours | None:
    """The coding of a dataset.json, or None for a dataset of another task."""
    if info.get("task") != TASK.name:
        return None
    space = COLOUR_SPACES[info["colour_space"]["name"]]
    bins = info.get("bins")
    return StoredColours(space, None if not bins else np.asarray(bins["centres"], dtype=np.float64))
