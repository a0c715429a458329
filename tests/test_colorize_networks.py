"""The colorization networks: they build, their grids line up, and the hypercolumn net's loss is
the article's (the mean of plain and blurred Euclidean distances), forward and gradient, against a
numpy reference."""
import numpy as np
import pytest
import torch

from digitslite.caffe.deploy import deploy_net
from digitslite.caffe.shapes import blob_shapes
from digitslite.engine.net import CaffeNet
from digitslite.errors import UserError
from digitslite.networks import load_network


def _binomial(taps: int) -> np.ndarray:
    """The 2-D binomial kernel with `taps` taps per side: [1 2 1]/4, [1 4 6 4 1]/16, ... squared."""
    row = np.array([1.0])
    for _ in range(taps - 1):
        row = np.convolve(row, [0.5, 0.5])
    return np.outer(row, row)


def _blur(planes: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'Valid' correlation of each [N, C, H, W] plane with `kernel`."""
    size = kernel.shape[0]
    height, width = planes.shape[-2] - size + 1, planes.shape[-1] - size + 1
    out = np.zeros((*planes.shape[:2], height, width))
    for dy in range(size):
        for dx in range(size):
            out += kernel[dy, dx] * planes[..., dy:dy + height, dx:dx + width]
    return out


def _blur_transposed(planes: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The adjoint of _blur: spreads each value back over the window it was read from."""
    size = kernel.shape[0]
    out = np.zeros((*planes.shape[:2], planes.shape[-2] + size - 1, planes.shape[-1] + size - 1))
    for dy in range(size):
        for dx in range(size):
            out[..., dy:dy + planes.shape[-2], dx:dx + planes.shape[-1]] += kernel[dy, dx] * planes
    return out


@pytest.mark.parametrize("name", ["colorize_hypercolumns_tiny", "colorize_hypercolumns"])
def test_hypercolumn_loss_is_the_mean_of_plain_and_blurred_euclidean_distances(name):
    batch, height, width = 2, 16, 24
    net = CaffeNet(load_network(name, 1), "train", stages=("train",), seed=3,
                   input_shapes={"data": (batch, 1, height, width), "chroma": (batch, 2, height, width)})
    rng = np.random.default_rng(0)
    data = torch.from_numpy(rng.uniform(0, 255, (batch, 1, height, width)).astype(np.float32))
    stored = torch.from_numpy(rng.integers(0, 256, (batch, 2, height, width)).astype(np.float32))
    outputs = net({"data": data, "chroma": stored}, keep=("prediction",))
    loss = net.loss(outputs)
    prediction = outputs["prediction"]
    (gradient,) = torch.autograd.grad(loss, prediction)

    predicted, target = prediction.detach().double().numpy(), stored.double().numpy() / 255
    assert predicted.shape == (batch, 2, height, width) and predicted.min() > 0 and predicted.max() < 1
    expected_loss, expected_gradient = 0.0, np.zeros_like(predicted)
    for taps in (1, 3, 5):
        kernel = _binomial(taps)
        difference = _blur(predicted, kernel) - _blur(target, kernel)
        expected_loss += np.square(difference).sum() / (2 * batch) / 3
        expected_gradient += _blur_transposed(difference, kernel) / batch / 3
    assert float(loss.detach()) == pytest.approx(expected_loss, rel=1e-5)
    # float32 sums: the golden tolerance, relative to the largest value (docs/DESIGN-NOTES.md)
    error = np.abs(gradient.double().numpy() - expected_gradient).max() / np.abs(expected_gradient).max()
    assert error < 1e-4


def test_hypercolumn_encoder_is_frozen_and_blurs_are_fixed_but_the_head_learns():
    net = load_network("colorize_hypercolumns", 1)
    rates = {layer.name: [spec.lr_mult for spec in layer.param] for layer in net.layer if layer.param}
    assert rates["conv1_1"] == rates["conv4_3"] == [0, 0]
    assert rates["up4"] == [0] and rates["prediction_blur1"] == [0]
    assert rates["head1"] == [1] and rates["chroma_score"] == [1, 2]
    head = next(layer for layer in net.layer if layer.name == "head2")
    assert not head.convolution_param.bias_term


@pytest.mark.parametrize(("name", "channels"), [
    ("colorize_hypercolumns_tiny", 1 + 16 + 32 + 64 + 64),
    ("colorize_hypercolumns", 1 + 64 + 128 + 256 + 512),
])
def test_hypercolumns_hold_every_stage_at_the_input_size(name, channels):
    shapes = blob_shapes(deploy_net(load_network(name, 1), (1, 1, 40, 56)))
    assert shapes["hypercolumns"] == (1, channels, 40, 56)
    assert shapes["prediction"] == (1, 2, 40, 56)


@pytest.mark.parametrize("name", ["colorize_classes", "colorize_classes_full"])
def test_class_nets_score_every_bin_at_every_pixel(name):
    # Two (tiny) or three (full) 2x2 pools map x -> x/4 - 3/8 or x/8 - 7/16; the full net's k4 s2 p1
    # Deconvolution brings it to x/4 - 3/8 as well; the x4 upsampling (k8 s4) maps y -> 4y + 7/2,
    # so the upsampled scores sit at x + 2: Crop offset 2 in both.
    net = load_network(name, 313)
    assert [list(layer.crop_param.offset) for layer in net.layer if layer.type == "Crop"] == [[2]]
    shapes = blob_shapes(deploy_net(net, (1, 1, 64, 48)))
    assert shapes["prob"] == (1, 313, 64, 48)
    loss = next(layer for layer in net.layer if layer.type == "InfogainLoss")
    assert loss.infogain_loss_param.source == "infogain.binaryproto"


def test_a_dataset_without_bins_trains_the_regression_nets_but_not_the_bin_nets():
    """A yuv dataset has no bins (its classes are []): {{num_classes}} is read only where a net has it."""
    assert load_network("colorize_hypercolumns_tiny", 0).name == "colorize_hypercolumns_tiny"
    with pytest.raises(UserError, match="class count must be at least 1, got 0"):
        load_network("colorize_classes", 0)
