"""`digitslite infer` on a small segmentation net and on bad input; Caffe's preprocessing order."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from digitslite.caffe.caffemodel import write_caffemodel
from digitslite.caffe.prototxt import parse_net
from digitslite.cli import main
from digitslite.engine.infer import Predictor, Preprocessing
from digitslite.engine.net import CaffeNet
from digitslite.errors import UserError
from digitslite.viz import voc_palette
from tests.test_infer_tiling import SMALL_FCN


def test_preprocessing_reorders_channels_then_subtracts_the_mean_then_scales():
    pixels = np.array([[[100, 50, 0]]], dtype=np.uint8)  # one RGB pixel
    blob = Preprocessing(channels="bgr", mean=(10, 20, 30), scale=0.5).blob(pixels)
    assert blob.shape == (1, 3, 1, 1)
    # BGR (0, 50, 100) - (10, 20, 30) = (-10, 30, 70), times 0.5
    assert blob.reshape(-1).tolist() == [-5.0, 15.0, 35.0]
    rgb = Preprocessing(channels="rgb", mean=(1,), scale=2.0).blob(pixels)
    assert rgb.reshape(-1).tolist() == [198.0, 98.0, -2.0]
    gray = Preprocessing(channels="gray", mean=(28,), scale=0.25).blob(np.array([[128, 0]], dtype=np.uint8))
    assert gray.shape == (1, 1, 1, 2)
    assert gray.reshape(-1).tolist() == [25.0, -7.0]


def test_preprocessing_refuses_a_mean_of_the_wrong_length():
    with pytest.raises(UserError, match="3 values"):
        Preprocessing(channels="bgr", mean=(1, 2))


@pytest.fixture
def segmentation_files(tmp_path):
    """The small FCN as deploy prototxt + seeded weights, and a 30x50 RGB image."""
    net_path, weights_path = tmp_path / "deploy.prototxt", tmp_path / "w.caffemodel"
    image_path = tmp_path / "a.png"
    net_path.write_text(SMALL_FCN)
    net = CaffeNet(parse_net(SMALL_FCN), seed=7)
    with torch.no_grad():
        net.layers[-2].weight.mul_(40)  # strong enough scores that several classes win somewhere
    write_caffemodel(weights_path, parse_net(SMALL_FCN), net.weights())
    pixels = np.random.default_rng(1).integers(0, 256, size=(30, 50, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(image_path)
    return net_path, weights_path, image_path, pixels


def _infer(*args: str):
    return CliRunner().invoke(main, ["infer", "--device", "cpu", *args])


def test_score_maps_become_palette_pngs_and_overlays(segmentation_files, tmp_path):
    net_path, weights_path, image_path, pixels = segmentation_files
    out = tmp_path / "out"
    result = _infer("--net", str(net_path), "--weights", str(weights_path), "--channels", "rgb",
                    "--save-dir", str(out), "--json", str(image_path))
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.output)
    assert record["outputs"]["crop"] == {"shape": [3, 30, 50]}
    entry = record["argmax"]["crop"]
    assert entry["shape"] == [30, 50]
    assert entry["png"] == str(out / "a_crop.png")

    net = CaffeNet(parse_net(SMALL_FCN))
    net.load_weights(weights_path)
    expected = Predictor(net, Preprocessing(channels="rgb")).predict(pixels)["crop"].argmax(axis=0)
    assert len(np.unique(expected)) > 1
    with Image.open(entry["png"]) as png:
        assert png.mode == "P"
        assert np.asarray(png).tolist() == expected.tolist()

    with Image.open(entry["overlay"]) as picture:
        overlay = np.asarray(picture.convert("RGB")).astype(int)
    background = expected == 0
    assert (overlay[background] == pixels[background]).all()  # class 0 is left unpainted
    y, x = np.argwhere(expected == 1)[0]
    blend = np.floor(pixels[y, x] * 0.5 + voc_palette()[1] * 0.5 + 0.5)
    assert overlay[y, x].tolist() == blend.tolist()


def test_tiled_cli_run_gives_the_same_class_map(segmentation_files, tmp_path):
    net_path, weights_path, image_path, _ = segmentation_files
    maps = []
    for tile in ("1000", "34"):  # 34 = 15 + 15 + 4, the smallest tile this net allows
        out = tmp_path / f"out{tile}"
        result = _infer("--net", str(net_path), "--weights", str(weights_path), "--channels", "rgb",
                        "--max-tile", tile, "--save-dir", str(out), str(image_path))
        assert result.exit_code == 0, result.output
        with Image.open(out / "a_crop.png") as png:
            maps.append(np.asarray(png))
    assert (maps[0] == maps[1]).all()


@pytest.mark.parametrize(("extra", "message"), [
    (["--channels", "gray"], "choose the channel order"),
    (["--max-tile", "20"], "at least 34"),
    (["--blob", "nope"], "no blob named 'nope'"),
])
def test_bad_options_are_one_line_errors(segmentation_files, tmp_path, extra, message):
    net_path, weights_path, _, _ = segmentation_files
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((30, 60, 3), dtype=np.uint8)).save(big)
    result = _infer("--net", str(net_path), "--weights", str(weights_path), *extra, str(big))
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and message in result.output
    assert result.output.count("\n") == 1


def test_unreadable_image_names_the_file(segmentation_files, tmp_path):
    net_path, weights_path, _, _ = segmentation_files
    bogus = tmp_path / "not_an_image.png"
    bogus.write_text("hello")
    result = _infer("--net", str(net_path), "--weights", str(weights_path), str(bogus))
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {bogus}: cannot read the image")


def test_two_images_with_one_name_would_overwrite_each_other(segmentation_files, tmp_path):
    net_path, weights_path, image_path, _ = segmentation_files
    other = tmp_path / "sub" / "a.png"
    other.parent.mkdir()
    other.write_bytes(image_path.read_bytes())
    result = _infer("--net", str(net_path), "--weights", str(weights_path), "--save-dir", str(tmp_path / "o"),
                    str(image_path), str(other))
    assert result.exit_code == 1
    assert "rename one" in result.output


def test_classifier_input_of_another_size_needs_resize(peer, tmp_path):
    image = tmp_path / "one.png"
    with Image.open(peer("mnistdeploy__samples__img_1_2.png")) as digit:
        digit.resize((56, 56), Image.Resampling.BILINEAR).save(image)
    args = ["--net", str(peer("mnistdeploy__mnist_deploy.prototxt")),
            "--weights", str(peer("mnistdeploy__lenet_iter_10000.caffemodel")), "--scale", "0.00390625"]
    refused = _infer(*args, str(image))
    assert refused.exit_code == 1
    assert "declared 28x28" in refused.output and "--resize" in refused.output
    resized = _infer(*args, "--resize", "--json", str(image))
    assert resized.exit_code == 0, resized.output
    assert json.loads(resized.output)[0]["argmax"]["loss"] == 1
