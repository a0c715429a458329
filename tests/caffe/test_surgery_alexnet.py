"""AlexNet -> DIGITS FCN-AlexNet surgery on the real peer prototxts, with random source weights.

The surgery (about 250 MB of weights each way) runs once per module; each test checks one fact.
"""
import numpy as np
import pytest

from digitslite.caffe.caffemodel import read_caffemodel, read_weights, write_caffemodel
from digitslite.caffe.prototxt import read_net
from digitslite.caffe.surgery import bilinear_kernel, transplant_files

pytestmark = pytest.mark.slow

ALEXNET = "caffe__bvlc_alexnet__deploy.prototxt"
FCN_ALEXNET = "digits__semantic-segmentation__fcn_alexnet.deploy.prototxt"
# BVLC AlexNet parameter shapes (conv2/4/5 use group 2; pool5 is 256 x 6 x 6 = 9216)
ALEXNET_SHAPES = {
    "conv1": [(96, 3, 11, 11), (96,)],
    "conv2": [(256, 48, 5, 5), (256,)],
    "conv3": [(384, 256, 3, 3), (384,)],
    "conv4": [(384, 192, 3, 3), (384,)],
    "conv5": [(256, 192, 3, 3), (256,)],
    "fc6": [(4096, 9216), (4096,)],
    "fc7": [(4096, 4096), (4096,)],
    "fc8": [(1000, 4096), (1000,)],
}


@pytest.fixture(scope="module")
def _cache() -> dict:
    return {}


@pytest.fixture
def fcn(peer, tmp_path_factory, _cache) -> dict:
    """{"src": source arrays, "out": surgery output arrays, "actions": {layer: action}, "path": output}."""
    if not _cache:
        folder = tmp_path_factory.mktemp("alexnet_surgery")
        rng = np.random.default_rng(7)
        src = {name: [rng.standard_normal(shape, dtype=np.float32) for shape in shapes]
               for name, shapes in ALEXNET_SHAPES.items()}
        src_weights = folder / "alexnet.caffemodel"
        write_caffemodel(src_weights, read_net(peer(ALEXNET)), src)
        out = folder / "fcn_alexnet.caffemodel"
        actions = transplant_files(peer(ALEXNET), src_weights, peer(FCN_ALEXNET), out)
        _cache.update(src=src, out=read_weights(out), path=out,
                      actions={a.layer: (a.action, a.src_shape, a.dst_shape) for a in actions})
    return _cache


def conv2d_valid(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Caffe's convolution (cross-correlation, stride 1, no padding) of one (C, H, W) input."""
    windows = np.lib.stride_tricks.sliding_window_view(x, weight.shape[2:], axis=(1, 2))
    return np.einsum("chwij,ocij->ohw", windows, weight)


def test_every_layer_is_reported(fcn):
    assert fcn["actions"] == {
        "conv1": ("copied", (96, 3, 11, 11), (96, 3, 11, 11)),
        "conv2": ("copied", (256, 48, 5, 5), (256, 48, 5, 5)),
        "conv3": ("copied", (384, 256, 3, 3), (384, 256, 3, 3)),
        "conv4": ("copied", (384, 192, 3, 3), (384, 192, 3, 3)),
        "conv5": ("copied", (256, 192, 3, 3), (256, 192, 3, 3)),
        "fc6": ("coerced", (4096, 9216), (4096, 256, 6, 6)),
        "fc7": ("coerced", (4096, 4096), (4096, 4096, 1, 1)),
        "score_fr_21classes": ("left-initialised", None, (21, 4096, 1, 1)),
        "upscore_21classes": ("interpolated", None, (21, 1, 63, 63)),
        "fc8": ("dropped", (1000, 4096), None),
    }


def test_convolutions_are_copied_unchanged(fcn):
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5"):
        for copied, original in zip(fcn["out"][name], fcn["src"][name], strict=True):
            np.testing.assert_array_equal(copied, original)


def test_fc6_becomes_a_6x6_convolution_with_the_same_numbers_in_c_order(fcn):
    weight, bias = fcn["out"]["fc6"]
    source_weight, source_bias = fcn["src"]["fc6"]

    assert weight.shape == (4096, 256, 6, 6)
    # output 5, channel 3, row 2, column 4 is input 3*36 + 2*6 + 4 = 124 of the flattened pool5
    assert weight[5, 3, 2, 4] == source_weight[5, 124]
    np.testing.assert_array_equal(weight.reshape(4096, 9216), source_weight)
    np.testing.assert_array_equal(bias, source_bias)


def test_fc6_as_convolution_computes_the_inner_product_on_one_position(fcn):
    weight, bias = fcn["out"]["fc6"]
    source_weight, source_bias = fcn["src"]["fc6"]
    x = np.random.default_rng(3).standard_normal((256, 6, 6))

    as_convolution = conv2d_valid(x, weight)[:, 0, 0] + bias
    as_inner_product = source_weight @ x.reshape(-1) + source_bias

    np.testing.assert_allclose(as_convolution, as_inner_product, rtol=1e-9, atol=1e-9)


def test_fc7_becomes_a_1x1_convolution(fcn):
    weight, bias = fcn["out"]["fc7"]

    assert weight.shape == (4096, 4096, 1, 1)
    np.testing.assert_array_equal(weight[:, :, 0, 0], fcn["src"]["fc7"][0])
    np.testing.assert_array_equal(bias, fcn["src"]["fc7"][1])


def test_upscore_is_grouped_bilinear(fcn):
    (weight,) = fcn["out"]["upscore_21classes"]

    assert weight.shape == (21, 1, 63, 63)
    # f = 32, centre 31: the middle is 1, the corner (1/32)^2, the middle of an edge 1/32
    assert (weight[:, 0, 31, 31] == 1).all()
    assert (weight[:, 0, 0, 0] == 1 / 1024).all()
    assert (weight[:, 0, 31, 0] == 1 / 32).all()
    for channel in range(21):
        np.testing.assert_array_equal(weight[channel, 0], bilinear_kernel(63))


def test_output_holds_the_destination_net_without_blobs_for_left_initialised_layers(fcn, peer):
    written = read_caffemodel(fcn["path"])

    destination = read_net(peer(FCN_ALEXNET))
    assert [layer.name for layer in written.layer] == [layer.name for layer in destination.layer]
    assert "score_fr_21classes" not in fcn["out"]
    assert "fc8" not in fcn["out"]
