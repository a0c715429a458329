"""Neuron layers (§7.13 test_neuron_layer / test_power_layer): numpy references, gradients, Dropout."""
import math

import numpy as np
import pytest
import torch

from digitslite.caffe import caffe_pb2
from digitslite.errors import UserError
from tests.engine.test_layers_support import gradcheck_layer, make_layer

SHAPE = (2, 3, 4, 5)


def bottom(seed: int = 0) -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def neuron(kind: str, body: str = "", phase: int = caffe_pb2.TRAIN):
    return make_layer(f'name: "n" type: "{kind}" {body}', SHAPE, phase=phase).double()


@pytest.mark.parametrize(("kind", "body", "reference"), [
    ("ReLU", "", lambda x: np.maximum(x, 0)),
    ("ReLU", "relu_param { negative_slope: 0.01 }", lambda x: np.where(x > 0, x, 0.01 * x)),
    ("Sigmoid", "", lambda x: 1 / (1 + np.exp(-x))),
    ("TanH", "", lambda x: (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x))),
    ("ELU", "elu_param { alpha: 0.5 }", lambda x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1))),
    ("ELU", "elu_param { alpha: 0 }", lambda x: np.maximum(x, 0)),
    ("PReLU", "", lambda x: np.where(x > 0, x, 0.25 * x)),
])
def test_forward_matches_reference(kind, body, reference):
    x = bottom()
    # Prototxt floats are float32 (0.01 is 0.0099999998), hence the relative tolerance.
    np.testing.assert_allclose(neuron(kind, body)(x)[0].detach().numpy(), reference(x.numpy()), rtol=1e-6)


@pytest.mark.parametrize(("kind", "body"), [
    ("ReLU", "relu_param { negative_slope: 0.01 }"), ("Sigmoid", ""), ("TanH", ""),
    ("ELU", "elu_param { alpha: 0.5 }"), ("PReLU", 'prelu_param { filler { type: "gaussian" } }'),
    ("PReLU", "prelu_param { channel_shared: true }"),
    ("Power", "power_param { power: 0.37 scale: 0.83 shift: 2.4 }"),
    ("Power", "power_param { power: 2 scale: 0.34 shift: -2.4 }"),
    ("Power", "power_param { power: 1 scale: 0.83 shift: -2.4 }"),
])
def test_gradients(kind, body):
    # Keep inputs away from the kinks at 0 (and the Power base away from negative values).
    x = bottom(1)
    x = torch.where(x.abs() < 0.05, 0.5, x).abs() if kind == "Power" else torch.where(x.abs() < 0.05, 0.5, x)
    gradcheck_layer(neuron(kind, body), x)


def test_relu_gradient_at_zero_takes_the_slope_branch():
    x = torch.zeros(3, requires_grad=True)
    make_layer('name: "r" type: "ReLU" relu_param { negative_slope: 0.1 }', (3,))(x)[0].sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 0.1))


def test_prelu_default_slopes_and_shapes():
    layer = make_layer('name: "p" type: "PReLU"', SHAPE)
    assert layer.blob_names == ("slope",) and torch.equal(layer.slope.detach(), torch.full((3,), 0.25))
    shared = make_layer('name: "p" type: "PReLU" prelu_param { channel_shared: true }', SHAPE)
    assert shared.slope.shape == () and shared.slope.item() == 0.25


def test_prelu_equals_leaky_relu_forward_and_backward():
    x = bottom(2).requires_grad_()
    relu_x = x.detach().clone().requires_grad_()
    (prelu_top,) = neuron("PReLU")(x)
    (relu_top,) = neuron("ReLU", "relu_param { negative_slope: 0.25 }")(relu_x)
    torch.testing.assert_close(prelu_top, relu_top)
    weights = torch.randn(SHAPE, dtype=torch.float64)
    (prelu_top * weights).sum().backward()
    (relu_top * weights).sum().backward()
    torch.testing.assert_close(x.grad, relu_x.grad)


def test_prelu_slope_gradient_sums_dy_times_x_over_non_positive_inputs():
    layer = neuron("PReLU")
    x = bottom(3)
    dy = torch.randn(SHAPE, dtype=torch.float64)
    (layer(x)[0] * dy).sum().backward()
    expected = (dy * x * (x <= 0)).sum(dim=(0, 2, 3))
    torch.testing.assert_close(layer.slope.grad, expected)


def test_prelu_per_channel_slopes_apply_along_axis_1():
    layer = neuron("PReLU")
    layer.slope.data = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    (top,) = layer(-torch.ones(SHAPE, dtype=torch.float64))
    assert top[:, 0].eq(0).all() and top[:, 1].eq(-1).all() and top[:, 2].eq(-2).all()


def test_prelu_needs_two_axes():
    with pytest.raises(UserError, match="at least 2 axes"):
        make_layer('name: "p" type: "PReLU"', (5,))


@pytest.mark.parametrize(("power", "scale", "shift"), [(0.37, 0.83, -2.4), (1, 0.83, -2.4), (2, 0.34, -2.4),
                                                       (2, 0.5, 0), (0.37, 0.83, 2.4)])
def test_power_forward_including_nan_for_negative_base(power, scale, shift):
    x = bottom(4)
    layer = neuron("Power", f"power_param {{ power: {power} scale: {scale} shift: {shift} }}")
    power, scale, shift = (np.float64(np.float32(v)) for v in (power, scale, shift))  # prototxt floats
    with np.errstate(invalid="ignore"):
        expected = np.power(shift + scale * x.numpy(), power)
    np.testing.assert_allclose(layer(x)[0].numpy(), expected, rtol=1e-12, equal_nan=True)


def test_power_zero_is_all_ones_with_no_gradient():
    x = bottom(5).requires_grad_()
    (top,) = neuron("Power", "power_param { power: 0 scale: 0.83 shift: -2.4 }")(x)
    assert torch.equal(top, torch.ones(SHAPE, dtype=torch.float64)) and not top.requires_grad
    (constant,) = neuron("Power", "power_param { power: 2 scale: 0 shift: -3 }")(x)
    assert torch.equal(constant, torch.full(SHAPE, 9.0, dtype=torch.float64))


@pytest.mark.parametrize("ratio", [0.5, 0.75])
def test_dropout_train_scales_kept_values_and_keeps_the_right_fraction(ratio):
    torch.manual_seed(0)
    x = torch.rand(100, 100) + 0.5
    layer = make_layer(f'name: "d" type: "Dropout" dropout_param {{ dropout_ratio: {ratio} }}', (100, 100))
    (top,) = layer(x)
    kept = top != 0
    torch.testing.assert_close(top[kept], x[kept] / (1 - ratio), rtol=1e-6, atol=0)
    n, keep = x.numel(), 1 - ratio
    assert abs(kept.double().mean().item() - keep) < 4 * math.sqrt(keep * ratio / n)


def test_dropout_gradient_uses_the_same_mask():
    torch.manual_seed(1)
    x = (torch.rand(50, 50) + 0.5).requires_grad_()
    (top,) = make_layer('name: "d" type: "Dropout"', (50, 50))(x)
    top.sum().backward()
    torch.testing.assert_close(x.grad, (top != 0).float() * 2)


def test_dropout_test_phase_is_identity():
    x = torch.randn(SHAPE)
    (top,) = make_layer('name: "d" type: "Dropout"', SHAPE, phase=caffe_pb2.TEST)(x)
    assert torch.equal(top, x)


def test_dropout_ratio_must_be_below_one():
    with pytest.raises(UserError, match="dropout_ratio"):
        make_layer('name: "d" type: "Dropout" dropout_param { dropout_ratio: 1 }', SHAPE)
