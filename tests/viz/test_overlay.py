"""contours and overlay on tiny arrays with hand-computed pixels."""
import numpy as np
import pytest

from digitslite.viz import contours, overlay

PALETTE = np.array([[0, 0, 0], [0, 0, 255], [255, 255, 255]], dtype=np.uint8)


def test_contours_mark_both_sides_of_each_class_boundary():
    labels = np.array([[1, 1, 0, 0],
                       [1, 1, 0, 0],
                       [0, 0, 0, 0],
                       [0, 0, 0, 0]])
    expected = np.array([[0, 1, 1, 0],
                         [1, 1, 1, 0],
                         [1, 1, 0, 0],
                         [0, 0, 0, 0]], dtype=bool)
    assert contours(labels).tolist() == expected.tolist()


def test_one_class_has_no_contour_even_at_the_image_border():
    assert not contours(np.full((3, 5), 2)).any()


def test_half_opacity_blends_the_two_colours():
    image = np.array([[[200, 100, 0], [10, 20, 30]]], dtype=np.uint8)
    result = overlay(image, np.array([[1, 2]]), PALETTE, opacity=0.5)
    # (200+0)/2, (100+0)/2, (0+255)/2 = 127.5 rounds up; (10+255)/2 = 132.5 -> 133 ...
    assert result.tolist() == [[[100, 50, 128], [133, 138, 143]]]


def test_opacity_extremes_give_input_and_pure_colours():
    image = np.array([[[200, 100, 0]]], dtype=np.uint8)
    assert overlay(image, np.array([[1]]), PALETTE, opacity=0.0).tolist() == [[[200, 100, 0]]]
    assert overlay(image, np.array([[1]]), PALETTE, opacity=1.0).tolist() == [[[0, 0, 255]]]


def test_hidden_class_leaves_the_input_pixels():
    image = np.array([[[200, 100, 0], [200, 100, 0]]], dtype=np.uint8)
    result = overlay(image, np.array([[0, 1]]), PALETTE, opacity=1.0, hidden_classes=(0,))
    assert result.tolist() == [[[200, 100, 0], [0, 0, 255]]]


def test_outline_only_paints_exactly_the_boundary_pixels():
    image = np.full((1, 4, 3), 60, dtype=np.uint8)
    result = overlay(image, np.array([[1, 1, 2, 2]]), PALETTE, opacity=1.0, outline_only=True)
    assert result.tolist() == [[[60, 60, 60], [0, 0, 255], [255, 255, 255], [60, 60, 60]]]


def test_grayscale_input_becomes_rgb():
    image = np.array([[100]], dtype=np.uint8)
    assert overlay(image, np.array([[2]]), PALETTE, opacity=0.5).tolist() == [[[178, 178, 178]]]


def test_image_and_label_sizes_must_match():
    with pytest.raises(ValueError, match="must cover the image"):
        overlay(np.zeros((2, 2, 3), dtype=np.uint8), np.zeros((2, 3), dtype=int), PALETTE)


def test_opacity_outside_unit_interval_is_refused():
    with pytest.raises(ValueError, match="opacity"):
        overlay(np.zeros((1, 1, 3), dtype=np.uint8), np.zeros((1, 1), dtype=int), PALETTE, opacity=1.5)
