"""`digitslite infer` on a colorization model: the deploy net of colorize_classes with seeded weights
writes grey | colourised | original per image, and the temperature changes the colours."""
import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from digitslite.caffe.caffemodel import write_caffemodel
from digitslite.caffe.deploy import deploy_net
from digitslite.caffe.prototxt import write_net
from digitslite.cli import main
from digitslite.engine.net import CaffeNet
from digitslite.networks import load_network

CENTRES = [[0.0, 0.0], [40.0, 20.0], [-30.0, 50.0]]
INFO = {"task": "colorization", "classes": ["a 0 b 0", "a 40 b 20", "a -30 b 50"],
        "colour_space": {"name": "lab"}, "bins": {"centres": CENTRES}}


def _model(tmp_path):
    deploy = deploy_net(load_network("colorize_classes", len(CENTRES)), (1, 1, 24, 32))
    weights = CaffeNet(deploy, "test", seed=5).weights()
    for layer in deploy.layer:   # trained-looking BatchNorm statistics: mean 0, variance 1, factor 1
        if layer.type == "BatchNorm":
            mean, variance, factor = weights[layer.name]
            weights[layer.name] = [np.zeros_like(mean), np.ones_like(variance), np.ones_like(factor)]
    write_net(deploy, tmp_path / "deploy.prototxt")
    write_caffemodel(tmp_path / "w.caffemodel", deploy, weights)
    (tmp_path / "dataset.json").write_text(json.dumps(INFO))
    pixels = np.random.default_rng(2).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    return pixels


def _infer(tmp_path, out: str, *extra: str):
    return CliRunner().invoke(main, ["infer", "--net", str(tmp_path / "deploy.prototxt"),
                                     "--weights", str(tmp_path / "w.caffemodel"), "--dataset-json",
                                     str(tmp_path / "dataset.json"), "--save-dir", str(tmp_path / out),
                                     "--device", "cpu", "--json", *extra, str(tmp_path / "photo.png")])


def test_infer_writes_colourised_pictures_and_the_temperature_changes_them(tmp_path):
    pixels = _model(tmp_path)
    result = _infer(tmp_path, "out")
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.output)["images"]
    colour = np.asarray(Image.open(entry["colourised"]))
    assert colour.shape == (24, 32, 3)
    assert (np.asarray(Image.open(entry["original"])) == pixels).all()
    grey = np.asarray(Image.open(entry["grey"])).astype(int)
    assert (grey[..., 0] == grey[..., 2]).all() and not (colour[..., 0] == colour[..., 2]).all()
    error = np.mean((colour.astype(float) - pixels) ** 2)
    assert abs(entry["psnr"] - 10 * np.log10(255 ** 2 / error)) < 1e-9
    hot = _infer(tmp_path, "hot", "--temperature", "1.5")
    assert hot.exit_code == 0, hot.output
    warmer = np.asarray(Image.open(json.loads(hot.output)["images"][0]["colourised"]))
    assert not (warmer == colour).all()


def test_a_colorization_model_needs_a_save_dir(tmp_path):
    _model(tmp_path)
    result = CliRunner().invoke(main, ["infer", "--net", str(tmp_path / "deploy.prototxt"), "--weights",
                                       str(tmp_path / "w.caffemodel"), "--dataset-json",
                                       str(tmp_path / "dataset.json"), str(tmp_path / "photo.png")])
    assert result.exit_code != 0 and "--save-dir" in result.output
