"""The dataset's colour coding read back, and colourising pictures with it (hand-computed cases)."""
import numpy as np
import pytest
from PIL import Image

from digitslite.datasets.colorize.colour import LAB
from digitslite.engine.colorization.coding import StoredColours, stored_colours
from digitslite.jobs.colourise import colourise, recolour

CENTRES = np.array([[0.0, 0.0], [30.0, 40.0]])
CODING = StoredColours(LAB, CENTRES)


def test_stored_planes_decode_to_lab():
    # L is stored as L * 255 / 100, a and b as value + 128
    assert CODING.lightness(np.full((1, 1, 1, 1), 255.0))[0, 0, 0] == pytest.approx(100)
    assert CODING.from_unit(np.array([[[[128 / 255]], [[168 / 255]]]]))[0, :, 0, 0] == pytest.approx([0, 40])
    bins = np.array([[[[0, 1]]]])
    assert CODING.truth_chroma(bins)[0, :, 0, 1] == pytest.approx([30, 40])


def test_bin_scores_decode_by_the_annealed_mean_at_the_codings_temperature():
    equal = np.zeros((1, 2, 1, 1))
    assert CODING.predicted_chroma(equal)[0, :, 0, 0] == pytest.approx([15, 20])
    # scores log(3), 0: p = 0.75, 0.25; at T = 0.5, 0.9 and 0.1
    scores = np.array([np.log(3.0), 0.0]).reshape(1, 2, 1, 1)
    sharp = StoredColours(LAB, CENTRES, temperature=0.5)
    assert sharp.predicted_chroma(scores)[0, :, 0, 0] == pytest.approx([3, 4])


def test_rgb_of_lab_mid_grey_is_srgb_119():
    # CIE L* = 50 with a = b = 0 is sRGB (119, 119, 119) (L* 50 <-> Y 0.1842, companded 0.4663)
    assert CODING.rgb(np.full((1, 1, 1), 50.0), np.zeros((1, 2, 1, 1)))[0, 0, 0].tolist() == [119, 119, 119]


def test_dataset_json_names_the_coding():
    assert stored_colours({"classes": ["a"]}) is None
    coding = stored_colours({"task": "colorization", "colour_space": {"name": "lab"},
                             "bins": {"centres": CENTRES.tolist()}})
    assert coding.space is LAB and coding.centres.tolist() == CENTRES.tolist()
    yuv = stored_colours({"task": "colorization", "colour_space": {"name": "yuv"}, "bins": None})
    assert yuv.centres is None


def test_colourise_writes_the_pictures_and_a_distribution_to_decode_again(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 200
    distribution = np.stack([np.full((2, 3), 0.75), np.full((2, 3), 0.25)]).astype(np.float32)
    results = colourise(CODING, lambda lightness: {"prob": distribution}, [("red.png", rgb)], tmp_path,
                        lambda done: None, named="out")
    entry = results["images"][0]
    assert results["method"] == "classes" and entry["colourised"] == "out/00000_colour.png"
    for part in ("grey", "colourised", "original", "lightness", "distribution"):
        assert (tmp_path / entry[part].removeprefix("out/")).is_file()
    colour = np.asarray(Image.open(tmp_path / "00000_colour.png"))
    error = np.mean((colour - rgb.astype(float)) ** 2)
    assert entry["psnr"] == pytest.approx(10 * np.log10(255 ** 2 / error))
    grey = np.asarray(Image.open(tmp_path / "00000_grey.png"))
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    lightness = np.asarray(Image.open(tmp_path / "00000_lightness.png"))[..., 0]
    stored = np.load(tmp_path / "00000_distribution.npy")
    # at T = 0.38 the annealed mean is what the job wrote; at T = 1 it is (7.5, 10), less saturated
    assert (recolour(CODING, lightness, stored, 0.38) == colour).all()
    expected_at_1 = CODING.rgb(CODING.lightness(lightness[None, None]),
                               np.array([7.5, 10.0]).reshape(1, 2, 1, 1) * np.ones((1, 2, 2, 3)))[0]
    assert (recolour(CODING, lightness, stored, 1.0) == expected_at_1).all()
    assert not (expected_at_1 == colour).all()
    assert results["scores"]["ab_error"] > 0
