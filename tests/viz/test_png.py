"""Label PNGs keep indices and palette; writes are whole or absent."""
import numpy as np
import pytest
from PIL import Image

from digitslite.errors import UserError
from digitslite.viz import voc_palette, write_label_png, write_rgb_png


def test_label_png_is_palette_mode_with_the_indices_as_pixels(tmp_path):
    path = tmp_path / "labels.png"
    write_label_png(path, np.array([[0, 1], [15, 255]]), voc_palette())
    with Image.open(path) as image:
        assert image.mode == "P"
        assert np.asarray(image).tolist() == [[0, 1], [15, 255]]
        palette = image.getpalette()
    assert palette[15 * 3:16 * 3] == [192, 128, 128]
    assert [path.name] == [entry.name for entry in tmp_path.iterdir()]  # no temporary file left


def test_rgb_png_round_trips(tmp_path):
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    write_rgb_png(tmp_path / "picture.png", rgb)
    with Image.open(tmp_path / "picture.png") as image:
        assert image.mode == "RGB"
        assert np.asarray(image).tolist() == rgb.tolist()


def test_unwritable_folder_is_a_user_error_and_leaves_nothing(tmp_path):
    with pytest.raises(UserError, match="missing"):
        write_rgb_png(tmp_path / "missing" / "picture.png", np.zeros((1, 1, 3), dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []
