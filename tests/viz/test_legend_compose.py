"""Legend rows and swatches; side-by-side panels."""
import numpy as np
import pytest

from digitslite.viz import comparison, legend, legend_entries, side_by_side, voc_palette
from digitslite.viz.legend import ROW_HEIGHT, SWATCH, SWATCH_MARGIN, TEXT_LEFT


def test_legend_has_one_row_per_class_with_its_swatch_colour():
    palette = voc_palette()
    image = legend(["background", "aeroplane", "bicycle"], palette)
    assert image.dtype == np.uint8
    assert image.shape[0] == 3 * ROW_HEIGHT
    for row, index in enumerate((0, 1, 2)):
        top = row * ROW_HEIGHT + SWATCH_MARGIN
        swatch = image[top:top + SWATCH, SWATCH_MARGIN:SWATCH_MARGIN + SWATCH]
        assert (swatch == palette[index]).all()
        assert tuple(image[top - 1, SWATCH_MARGIN]) == (255, 255, 255)  # white above the swatch


def test_legend_selection_uses_the_given_indices_and_writes_text():
    palette = voc_palette()
    image = legend({15: "person", 20: "tvmonitor"}, palette)
    assert image.shape[0] == 2 * ROW_HEIGHT
    assert tuple(image[SWATCH_MARGIN, SWATCH_MARGIN]) == (192, 128, 128)
    assert tuple(image[ROW_HEIGHT + SWATCH_MARGIN, SWATCH_MARGIN]) == (0, 64, 128)
    assert (image[:, TEXT_LEFT:] < 128).any()  # some dark text pixels


def test_longer_names_make_a_wider_legend():
    palette = voc_palette()
    assert legend(["a much longer class name"], palette).shape[1] > legend(["ab"], palette).shape[1]


def test_legend_entries_lists_present_classes_with_digits_fallback_names():
    labels = np.array([[0, 3], [3, 25]])
    assert legend_entries(labels, ["bg", "a", "b", "c"], hidden_classes=(0,)) == {3: "c", 25: "Class #25"}


def test_side_by_side_puts_white_gaps_between_panels():
    first = np.zeros((2, 2, 3), dtype=np.uint8)
    second = np.full((2, 3), 7, dtype=np.uint8)  # grayscale panel
    result = side_by_side([first, second], gap=4)
    assert result.shape == (2, 2 + 4 + 3, 3)
    assert (result[:, :2] == 0).all()
    assert (result[:, 2:6] == 255).all()
    assert (result[:, 6:] == 7).all()


def test_side_by_side_refuses_panels_of_different_heights():
    with pytest.raises(ValueError, match="one height"):
        side_by_side([np.zeros((2, 2, 3), np.uint8), np.zeros((3, 2, 3), np.uint8)])


def test_comparison_is_input_overlay_and_ground_truth():
    palette = np.array([[0, 0, 0], [200, 0, 0]], dtype=np.uint8)
    image = np.full((1, 2, 3), 100, dtype=np.uint8)
    result = comparison(image, np.array([[0, 1]]), palette, ground_truth=np.array([[1, 1]]),
                        opacity=0.5, hidden_classes=(0,))
    gap = result.shape[1] - 3 * 2
    assert gap == 2 * 4
    panels = result[:, 0:2], result[:, 6:8], result[:, 12:14]
    assert panels[0].tolist() == image.tolist()
    assert panels[1].tolist() == [[[100, 100, 100], [150, 50, 50]]]
    assert panels[2].tolist() == [[[200, 0, 0], [200, 0, 0]]]
