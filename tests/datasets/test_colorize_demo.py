"""`digitslite demo --task colorization`: colour scenes whose colours are the shapes' own."""
import numpy as np
from click.testing import CliRunner
from PIL import Image

from digitslite.cli import main
from digitslite.datasets.colorize.colour import LAB
from digitslite.datasets.colorize.demo import SHAPE_COLOURS, write_colour_demo


def _hue(rgb) -> np.ndarray:
    lab = LAB.from_rgb(np.asarray(rgb, dtype=np.uint8).reshape(-1, 1, 3))[:, 0]
    return np.degrees(np.arctan2(lab[:, 2], lab[:, 1]))


def test_scenes_are_reproducible_per_index_and_coloured_only_by_the_shape_colours(tmp_path):
    small = write_colour_demo(tmp_path / "small", count=3, val_count=1, seed=4)
    write_colour_demo(tmp_path / "large", count=5, val_count=2, seed=4)
    assert small["count"] == 3 and len(list((tmp_path / "large" / "images").iterdir())) == 5
    for name in ("images/0002.png", "val_images/0000.png"):
        assert (np.asarray(Image.open(tmp_path / "small" / name)) ==
                np.asarray(Image.open(tmp_path / "large" / name))).all()
    shape_hues = _hue(list(SHAPE_COLOURS.values()))
    for path in sorted((tmp_path / "large" / "images").iterdir()):
        pixels = np.asarray(Image.open(path)).reshape(-1, 3)
        lab = LAB.from_rgb(pixels[:, None])[:, 0]
        coloured = np.hypot(lab[:, 1], lab[:, 2]) > 25  # well away from the pale background
        assert coloured.any()
        hues = np.degrees(np.arctan2(lab[coloured, 2], lab[coloured, 1]))
        gap = np.abs((hues[:, None] - shape_hues[None, :] + 180) % 360 - 180).min(axis=1)
        assert np.percentile(gap, 99) < 15, path


def test_cli_writes_colour_scenes_and_prints_the_dataset_command(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--task", "colorization", "--out", str(tmp_path / "demo"),
                                       "--count", "2", "--val-count", "1"])
    assert result.exit_code == 0, result.output
    assert "dataset create --task colorization" in result.output
    with Image.open(tmp_path / "demo" / "images" / "0001.png") as image:
        assert image.size == (64, 64) and image.mode == "RGB"
