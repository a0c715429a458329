"""Label decoding details beyond the creation tests: 32-bit index images and palette lookups."""
from pathlib import Path

import numpy as np
from PIL import Image

from digitslite.datasets.labels import find_reference_palette, make_label_decoder
from digitslite.datasets.options import ClassSpec
from tests.datasets.helpers import COLOURS, palette_for, save_palette_label


def index_decoder(count=None):
    names = None if count is None else ("a",) * count
    return make_label_decoder("index", ClassSpec(names, None), 255, False, None)


def test_32_bit_index_values_become_class_indices():
    values = np.array([[0, 1], [2, 255]], dtype=np.int32)

    decoded, found = index_decoder().decode(Image.fromarray(values), Path("l.tif"))

    assert found == [] and decoded.indices.dtype == np.uint8
    assert decoded.indices.tolist() == [[0, 1], [2, 255]]
    assert {value: decoded.histogram[value] for value in (0, 1, 2, 255)} == {0: 1, 1: 1, 2: 1, 255: 1}
    assert decoded.histogram.sum() == 4


def test_32_bit_values_that_do_not_fit_8_bits_are_out_of_range():
    values = np.array([[0, 300], [300, -1]], dtype=np.int32)

    decoded, found = index_decoder().decode(Image.fromarray(values), Path("l.tif"))

    assert decoded is None
    assert found == [("out_of_range", "l.tif: 3 px outside 0-255 (e.g. 300)")]


def test_index_mode_reads_palette_images_by_index_ignoring_colours():
    label = Image.fromarray(np.array([[0, 2], [1, 1]], np.uint8)).convert("P")
    label.putpalette(palette_for([(9, 9, 9), (8, 8, 8), (7, 7, 7)]))

    decoded, found = index_decoder(3).decode(label, Path("l.png"))

    assert found == [] and decoded.indices.tolist() == [[0, 2], [1, 1]]
    assert decoded.histogram[:4].tolist() == [1, 2, 1, 0] and decoded.histogram.sum() == 4


def test_reference_palette_comes_from_the_first_palette_label(tmp_path):
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "0.png")  # RGB: skipped
    save_palette_label(tmp_path / "1.png", np.zeros((2, 2), np.uint8), COLOURS)

    palette, source = find_reference_palette([tmp_path / "0.png", tmp_path / "1.png"])

    assert source == tmp_path / "1.png"
    assert palette[:12] == bytes([channel for colour in COLOURS for channel in colour])
    assert palette[765:] == b"\xff\xff\xff"
