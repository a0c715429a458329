"""Colour conversion against published values, 8-bit storage, ab bins and class rebalancing."""
import math

import numpy as np
import pytest

from digitslite.caffe.caffemodel import read_blob_file
from digitslite.datasets.colorize.bins import (
    bin_counts,
    candidate_centres,
    kept_centres,
    label_map,
    nearest_centre,
    stored_lookup,
)
from digitslite.datasets.colorize.colour import LAB, YUV, is_grey
from digitslite.datasets.colorize.rebalance import infogain_blob, rebalancing_weights, smoothed_distribution

# sRGB primaries, white and black
RGB = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
# CIE Lab, D65 2-degree (Lindbloom's calculator and the sRGB specification's primaries)
PUBLISHED_LAB = [(100.0, 0.0, 0.0), (0.0, 0.0, 0.0), (53.2408, 80.0925, 67.2032),
                 (87.7347, -86.1827, 83.1793), (32.2970, 79.1875, -107.8602)]
# BT.601: Y = .299 R + .587 G + .114 B, U = .492 (B - Y), V = .877 (R - Y)
PUBLISHED_YUV = [(1.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.299, -0.14713, 0.615),
                 (0.587, -0.28886, -0.51499), (0.114, 0.436, -0.10001)]


def test_lab_matches_published_d65_values():
    # within 0.01: published tables round the D65 white point differently; storage steps are 0.39 and 1
    assert LAB.from_rgb(RGB)[0] == pytest.approx(np.array(PUBLISHED_LAB), abs=1e-2)


def test_yuv_matches_bt601():
    assert YUV.from_rgb(RGB)[0] == pytest.approx(np.array(PUBLISHED_YUV), abs=2e-4)


def test_lab_storage_is_l_times_2_55_and_ab_plus_128():
    lightness, chroma = LAB.encode(LAB.from_rgb(RGB))
    # red: L 53.24 -> round(135.76) = 136; a 80.09 -> 208; b 67.20 -> 195
    assert lightness[0].tolist() == [255, 0, 136, 224, 82]
    assert chroma[0, 2].tolist() == [208, 195]
    assert chroma[0, 4].tolist() == [207, 20]  # blue: a 79.19 -> 207, b -107.86 -> 20
    assert chroma[0, 0].tolist() == [128, 128]


def test_yuv_storage_spans_0_255():
    lightness, chroma = YUV.encode(YUV.from_rgb(RGB))
    assert lightness[0].tolist() == [255, 0, 76, 150, 29]  # round(255 * Y)
    assert chroma[0, 4].tolist() == [255, 107]  # U = +0.436 -> 255; V -0.1 -> round(127.5 - 20.73)
    assert chroma[0, 2].tolist() == [84, 255]  # U -0.14713 -> round(84.47); V +0.615 -> 255


@pytest.mark.parametrize("space", [LAB, YUV])
def test_conversion_inverts_and_storage_is_within_half_a_step(space):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    values = space.from_rgb(rgb)
    assert np.abs(space.to_rgb(values).astype(int) - rgb).max() <= 1
    stored = space.decode(*space.encode(values))
    steps = np.array([(span.high - span.low) / 255 for span in space.ranges])
    assert (np.abs(stored - values) <= steps / 2 + 1e-9).all()


def test_grey_images_tolerate_jpeg_noise_only():
    grey = np.repeat(np.arange(0, 250, 10, dtype=np.uint8)[None, :, None], 3, axis=2)
    assert is_grey(grey)
    grey[0, 3] += np.array([0, 4, 2], dtype=np.uint8)
    assert is_grey(grey)
    grey[0, 5, 0] += 5
    assert not is_grey(grey)


def test_paper_candidates_are_multiples_of_ten():
    centres = candidate_centres("paper")
    assert len(centres) == 23 * 23
    assert centres[0].tolist() == [-110, -110] and centres[1].tolist() == [-110, -100]
    assert centres[11 * 23 + 11].tolist() == [0, 0]
    assert nearest_centre(np.array([[4.0, -6.0], [-96.0, 104.9]]), centres).tolist() == [
        11 * 23 + 10, 1 * 23 + 21]  # (0, -10) and (-100, 100)


def test_fixed_grid_is_18_by_18_over_the_gamut():
    centres = candidate_centres("18x18")
    width = 220 / 18
    assert len(centres) == 324
    assert centres[0] == pytest.approx([-110 + width / 2] * 2)
    assert centres[-1] == pytest.approx([110 - width / 2] * 2)
    # (0, 0) lies between the middle two centres of both axes: ties go to the lower bin
    assert nearest_centre(np.array([[0.0, 0.0], [1.0, -1.0]]), centres).tolist() == [8 * 18 + 8, 9 * 18 + 8]


def _histogram(pixels: dict[tuple[int, int], int]) -> np.ndarray:
    """A stored-chroma histogram from {(a, b): pixel count}."""
    histogram = np.zeros((256, 256), dtype=np.int64)
    for (a, b), count in pixels.items():
        histogram[a + 128, b + 128] = count
    return histogram


def test_paper_bins_keep_only_the_bins_that_occur():
    histogram = _histogram({(0, 0): 3, (21, -9): 1, (2, 3): 2})
    kept = kept_centres("paper", histogram)
    assert kept.tolist() == [[0, 0], [20, -10]]
    assert bin_counts(histogram, stored_lookup(kept), len(kept)).tolist() == [5, 1]
    assert len(kept_centres("18x18", histogram)) == 324


def test_labels_go_to_the_nearest_kept_bin():
    kept = np.array([[0.0, 0.0], [20.0, -10.0]])
    chroma = np.array([[[128, 128], [128 + 60, 128 - 40], [128 + 9, 128 - 3]]], dtype=np.uint8)
    labels = label_map(chroma, stored_lookup(kept))
    assert labels.dtype == np.uint16
    assert labels.tolist() == [[0, 1, 0]]  # (9, -3): 90 from (0,0), 170 from (20,-10)


def test_smoothing_is_a_gaussian_of_sigma_5_over_the_centres():
    centres = np.array([[0.0, 0.0], [10.0, 0.0]])
    spread = math.exp(-100 / 50)  # distance 10, sigma 5
    expected = np.array([0.75 + 0.25 * spread, 0.25 + 0.75 * spread]) / (1 + spread)
    assert smoothed_distribution(np.array([3, 1]), centres) == pytest.approx(expected, rel=1e-12)


def test_weights_mix_with_uniform_and_have_expectation_one():
    # lambda 0.5, Q 2: 1/(0.375 + 0.25) = 1.6 and 1/(0.125 + 0.25) = 8/3; E = 0.75*1.6 + 0.25*8/3 = 28/15
    weights = rebalancing_weights(np.array([0.75, 0.25]))
    assert weights == pytest.approx([6 / 7, 10 / 7], rel=1e-12)
    assert rebalancing_weights(np.full(4, 0.25)) == pytest.approx([1.0] * 4)


def test_infogain_matrix_is_diag_of_the_weights(tmp_path):
    path = tmp_path / "H.binaryproto"
    path.write_bytes(infogain_blob(np.array([6 / 7, 10 / 7, 1.0])))
    matrix = read_blob_file(path, "the infogain matrix", "")
    assert matrix.shape == (1, 1, 3, 3)
    assert matrix[0, 0] == pytest.approx(np.diag([6 / 7, 10 / 7, 1.0]))
