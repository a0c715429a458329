"""Palettes and colorize: VOC table values, dataset.json palettes, painting class indices."""
import json

import numpy as np
import pytest

from digitslite.errors import UserError
from digitslite.viz import colorize, extend_palette, read_dataset_classes, voc_palette


def test_voc_palette_known_entries():
    palette = voc_palette()
    assert palette.shape == (256, 3)
    assert palette.dtype == np.uint8
    # VOC2012 SegmentationClass colours: background, aeroplane, bicycle, bird, cat, dog, person,
    # tvmonitor and the void border
    expected = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 8: (64, 0, 0),
                12: (64, 0, 128), 15: (192, 128, 128), 20: (0, 64, 128), 255: (224, 224, 192)}
    for index, colour in expected.items():
        assert tuple(palette[index]) == colour, index


def test_voc_palette_of_fewer_classes_is_a_prefix():
    assert voc_palette(21).tolist() == voc_palette()[:21].tolist()


def test_extend_palette_keeps_given_colours_then_voc():
    palette = extend_palette([[1, 2, 3], [4, 5, 6]])
    assert palette.shape == (256, 3)
    assert palette[:3].tolist() == [[1, 2, 3], [4, 5, 6], [0, 128, 0]]
    assert tuple(palette[255]) == (224, 224, 192)


def test_extend_palette_refuses_values_outside_a_byte():
    with pytest.raises(ValueError, match="0-255"):
        extend_palette([[0, 0, 256]])


def test_read_dataset_classes(tmp_path):
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"classes": ["background", "road"], "palette": [[0, 0, 0], [128, 64, 128]]}))
    names, palette = read_dataset_classes(path)
    assert names == ["background", "road"]
    assert palette[:2].tolist() == [[0, 0, 0], [128, 64, 128]]
    assert len(palette) == 256


@pytest.mark.parametrize("content", [
    '{"classes": ["a"]}', "not json", '{"classes": ["a"], "palette": [[1, 2]]}'])
def test_read_dataset_classes_names_the_file_when_it_is_wrong(tmp_path, content):
    path = tmp_path / "dataset.json"
    path.write_text(content)
    with pytest.raises(UserError, match=r"dataset\.json"):
        read_dataset_classes(path)


def test_colorize_paints_each_index_with_its_colour():
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 255]], dtype=np.uint8)
    rgb = colorize(np.array([[0, 1], [2, 1]]), palette)
    assert rgb.dtype == np.uint8
    assert rgb.tolist() == [[[0, 0, 0], [255, 0, 0]], [[0, 0, 255], [255, 0, 0]]]


def test_colorize_refuses_indices_beyond_the_palette():
    with pytest.raises(ValueError, match="outside the palette"):
        colorize(np.array([[0, 3]]), np.zeros((3, 3), dtype=np.uint8))
