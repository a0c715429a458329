"""From a colorization net's outputs to ab colours.

Method 1 (per-pixel classification over ab bins) predicts a distribution Z over the K bin centres
per pixel. Zhang et al. (2016, §2.2) decode it with the annealed mean: re-normalise Z^(1/T) and take
the mean of the centres under it. T = 1 is the plain mean (desaturated), T -> 0 the mode (patchy);
their T = 0.38 sits between.
"""
import numpy as np

DEFAULT_TEMPERATURE = 0.38
SMALLEST_PROBABILITY = 1e-30   # floor before the log, so a bin of probability 0 stays at weight 0


def annealed_distribution(probabilities: np.ndarray, temperature: float, axis: int = 0) -> np.ndarray:
    """Z^(1/T) normalised along `axis` (the bins), computed in the log domain so small T cannot overflow."""
    if not temperature > 0:
        raise ValueError(f"the temperature must be above 0, got {temperature}")
    logs = np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), SMALLEST_PROBABILITY)) / temperature
    logs -= logs.max(axis=axis, keepdims=True)
    weights = np.exp(logs)
    return weights / weights.sum(axis=axis, keepdims=True)


def annealed_mean(probabilities: np.ndarray, centres: np.ndarray,
                  temperature: float = DEFAULT_TEMPERATURE) -> np.ndarray:
    """The ab colour per pixel: probabilities [K, H, W] over bins whose centres are [K, 2] (a, b)
    give [2, H, W] (a, b), as float32."""
    probabilities = np.asarray(probabilities)
    centres = np.asarray(centres, dtype=np.float64)
    if probabilities.shape[0] != centres.shape[0]:
        raise ValueError(f"the distribution has {probabilities.shape[0]} bins but there are "
                         f"{centres.shape[0]} bin centres")
    weights = annealed_distribution(probabilities, temperature, axis=0)
    return np.tensordot(centres.T, weights, axes=(1, 0)).astype(np.float32)


def softmax(scores: np.ndarray, axis: int = 0) -> np.ndarray:
    """The distribution a net's bin scores stand for (what its Softmax layer outputs)."""
    shifted = np.asarray(scores, dtype=np.float64) - np.max(scores, axis=axis, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=axis, keepdims=True)
