"""Colorization decoding and scores against hand-computed cases."""
import math

import numpy as np
import pytest

from digitslite.engine.colorization.decode import annealed_distribution, annealed_mean
from digitslite.engine.colorization.scores import ColorizationScores, colourfulness, psnr


def _pixel(*values):
    """A [K, 1, 1] distribution of one pixel."""
    return np.asarray(values, dtype=np.float64).reshape(-1, 1, 1)


def test_annealed_mean_at_t1_is_the_mean_of_the_centres():
    ab = annealed_mean(_pixel(0.75, 0.25), np.array([[0, 0], [10, 0]]), temperature=1.0)
    assert ab.shape == (2, 1, 1)
    assert ab[:, 0, 0] == pytest.approx([2.5, 0.0])


def test_annealed_mean_sharpens_with_the_temperature():
    # T = 0.5 squares the probabilities: 0.5625 and 0.0625, normalised 0.9 and 0.1
    ab = annealed_mean(_pixel(0.75, 0.25), np.array([[0, 0], [10, 20]]), temperature=0.5)
    assert ab[:, 0, 0] == pytest.approx([1.0, 2.0])


def test_annealed_mean_tends_to_the_mode_and_leaves_empty_bins_out():
    centres = np.array([[0, 0], [10, 20], [-30, 5]])
    assert annealed_mean(_pixel(0.5, 0.5, 0.0), centres, 1.0)[:, 0, 0] == pytest.approx([5.0, 10.0])
    assert annealed_mean(_pixel(0.4, 0.6, 0.0), centres, 0.01)[:, 0, 0] == pytest.approx([10, 20], abs=1e-6)


def test_annealed_distribution_is_per_pixel():
    probabilities = np.stack([np.full((2, 3), 0.75), np.full((2, 3), 0.25)])
    annealed = annealed_distribution(probabilities, 0.5)
    assert annealed[:, 1, 2] == pytest.approx([0.9, 0.1])
    with pytest.raises(ValueError, match="temperature"):
        annealed_distribution(probabilities, 0.0)


def test_annealed_mean_refuses_a_bin_count_that_differs():
    with pytest.raises(ValueError, match="3 bins but there are 2"):
        annealed_mean(_pixel(0.2, 0.3, 0.5), np.zeros((2, 2)))


def test_ab_error_mean_and_auc():
    # four pixels with ab errors 0, 5 (a 3-4-5 triangle), 100 and 200
    truth = np.zeros((1, 2, 1, 4))
    predicted = np.array([[[[0, 3, 100, 200]], [[0, 4, 0, 0]]]], dtype=np.float64)
    scores = ColorizationScores()
    grey = np.zeros((1, 1, 4, 3))
    scores.update(predicted, truth, grey, grey)
    summary = scores.summary()
    assert summary["ab_error"] == pytest.approx(305 / 4)
    # within t: 1/4 for t = 0..4, 2/4 for t = 5..99, 3/4 for t = 100..150
    assert summary["ab_auc"] == pytest.approx((5 * 0.25 + 95 * 0.5 + 51 * 0.75) / 151)


def test_psnr_and_colourfulness_by_hand():
    assert psnr(np.full((2, 2, 3), 10), np.zeros((2, 2, 3))) == pytest.approx(10 * math.log10(255 ** 2 / 100))
    assert psnr(np.ones((1, 1, 3)), np.ones((1, 1, 3))) == math.inf
    assert colourfulness(np.full((3, 3, 3), 128)) == 0
    red = np.array([[[255, 0, 0]]])
    assert colourfulness(red) == pytest.approx(0.3 * math.hypot(255, 127.5))
    red_and_green = np.array([[[255, 0, 0], [0, 255, 0]]])
    assert colourfulness(red_and_green) == pytest.approx(255 + 0.3 * 127.5)


def test_scores_merge_as_if_counted_together():
    rng = np.random.default_rng(0)
    ab = rng.uniform(-80, 80, (4, 2, 3, 5))
    truth = rng.uniform(-80, 80, (4, 2, 3, 5))
    rgb = rng.integers(0, 256, (4, 3, 5, 3))
    together, first, second = ColorizationScores(), ColorizationScores(), ColorizationScores()
    together.update(ab, truth, rgb, rgb[::-1])
    first.update(ab[:2], truth[:2], rgb[:2], rgb[::-1][:2])
    second.update(ab[2:], truth[2:], rgb[2:], rgb[::-1][2:])
    assert first.merge(second).summary() == pytest.approx(together.summary())
    assert ColorizationScores().summary()["ab_auc"] is None
