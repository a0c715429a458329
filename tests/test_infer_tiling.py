"""Tiling: footprints derived from the layers, the tile plan, and tiled == whole-image forward."""
from fractions import Fraction

import numpy as np
import pytest

from digitslite.caffe.prototxt import parse_net, read_net
from digitslite.engine.infer import (
    Predictor,
    Preprocessing,
    Span,
    TileGeometry,
    footprints,
    tile_geometry,
    tile_spans,
)
from digitslite.engine.net import CaffeNet
from digitslite.errors import UserError

# A small FCN: strided conv with padding, ceil-mode pooling, a within-channel LRN, upsampling by
# deconvolution and a Crop back to the input. Crop offset 2: the centre maps compose to
# d/2 + 1/2 (conv1), then /2 - 1/2 (pool1), then *4 + 3 (up): d + 2.
SMALL_FCN = """
name: "small_fcn"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 40 dim: 40 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 5 stride: 2 pad: 3
                            weight_filler { type: "gaussian" std: 0.1 }
                            bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1"
        lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL } }
layer { name: "score" type: "Convolution" bottom: "norm1" top: "score"
        convolution_param { num_output: 3 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "up" type: "Deconvolution" bottom: "score" top: "up"
        convolution_param { num_output: 3 kernel_size: 7 stride: 4 bias_term: false
                            weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "crop" type: "Crop" bottom: "up" bottom: "data" top: "crop" crop_param { axis: 2 offset: 2 } }
"""


def _fraction_triple(footprint):
    return [footprint.step[0], footprint.low[0], footprint.high[0]]


def test_footprints_of_the_small_fcn_by_hand():
    prints = footprints(parse_net(SMALL_FCN), "data")
    # conv1: output o reads inputs 2o-3 .. 2o+1; pool1 (3 conv1 positions, step 2): 4o-3 .. 4o+5;
    # LRN 3x3 within channel (pad 1, step 4): 4o-7 .. 4o+9; score 3x3 pad 1: 4o-11 .. 4o+13;
    # up (k7 s4 p0): o reads score positions (o-6)/4 .. o/4, i.e. inputs o-17 .. o+13; crop +2.
    assert _fraction_triple(prints["conv1"]) == [2, -3, 1]
    assert _fraction_triple(prints["pool1"]) == [4, -3, 5]
    assert _fraction_triple(prints["norm1"]) == [4, -7, 9]
    assert _fraction_triple(prints["score"]) == [4, -11, 13]
    assert _fraction_triple(prints["up"]) == [1, -17, 13]
    assert _fraction_triple(prints["crop"]) == [1, -15, 15]
    assert tile_geometry(parse_net(SMALL_FCN), "data", ["crop"]) == TileGeometry((15, 15), (15, 15), (4, 4))


def test_fcn_alexnet_geometry(peer):
    net = read_net(peer("digits__semantic-segmentation__fcn_alexnet.deploy.prototxt"))
    prints = footprints(net, "data")
    # conv1 (k11 s4 pad 100): o reads 4o-100 .. 4o-90. fc6 sees a 355-pixel window (AlexNet's
    # receptive field) starting at the pads summed over strides: 100 + 2*8 + 1*16*3 = 164.
    assert _fraction_triple(prints["conv1"]) == [4, -100, -90]
    assert _fraction_triple(prints["fc6"]) == [32, -164, 190]
    # Crop offset 18 (MANIFEST) centres each score pixel in its window.
    score = prints["score"]
    assert score.step == (Fraction(1), Fraction(1))
    assert score.low[0] == -score.high[0]
    assert tile_geometry(net, "data", ["score"]).align == (32, 32)


def test_classifier_outputs_are_not_tileable(peer):
    net = read_net(peer("mnistdeploy__mnist_deploy.prototxt"))
    assert footprints(net, "data")["ip1"] is None
    assert tile_geometry(net, "data", ["loss"]) is None


def test_tile_spans_by_hand():
    # tile 8, needs 1 before and 2 after, grid of 2: keep [0, 6) from [0, 8); the next start is the
    # last even position at or before 6 - 1, and it reaches the end, so it keeps up to the end.
    assert tile_spans(10, 8, 1, 2, 2) == [Span(0, 8, 0, 6), Span(4, 10, 6, 10)]
    assert tile_spans(8, 8, 1, 2, 2) == [Span(0, 8, 0, 8)]


def test_tiles_too_small_for_the_window_are_refused():
    with pytest.raises(UserError, match="at least 5"):
        tile_spans(100, 4, 1, 2, 2)


def _small_fcn_predictor(max_tile: int) -> Predictor:
    net = CaffeNet(parse_net(SMALL_FCN), seed=3)
    return Predictor(net, Preprocessing(channels="rgb", scale=1 / 255), max_tile=max_tile)


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, size=(70, 90, 3), dtype=np.uint8)


def test_tiled_forward_equals_the_whole_image_forward(image):
    whole = _small_fcn_predictor(max_tile=1000).predict(image)["crop"]
    tiled_predictor = _small_fcn_predictor(max_tile=40)
    assert len(tile_spans(70, 40, 15, 15, 4)) > 1 and len(tile_spans(90, 40, 15, 15, 4)) > 1
    tiled = tiled_predictor.predict(image)["crop"]
    assert whole.shape == tiled.shape == (3, 70, 90)
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("geometry", [
    TileGeometry((0, 0), (0, 0), (4, 4)),      # no overlap: outputs next to tile edges lose context
    TileGeometry((15, 15), (15, 15), (1, 1)),  # tiles starting at 10, 20...: another pooling grid
])
def test_the_overlap_and_the_alignment_both_matter(image, geometry):
    whole = _small_fcn_predictor(max_tile=1000).predict(image)["crop"]
    predictor = _small_fcn_predictor(max_tile=40)
    predictor.geometry = geometry
    assert np.abs(predictor.predict(image)["crop"] - whole).max() > 1e-3
