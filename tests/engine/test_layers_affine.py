"""Scale and Bias (§7.13 test_scale_layer / test_bias_layer): broadcasting cases, learned blobs, gradients."""
import numpy as np
import pytest
import torch

from digitslite.errors import UserError
from tests.engine.test_layers_support import gradcheck_layer, make_layer

SHAPE = (2, 3, 4, 5)
# (axis given to the layer, operand shape, where the operand starts in the bottom)
CASES = [(0, (2, 3, 4, 5), 0), (0, (2, 3), 0), (1, (3, 4), 1), (2, (4, 5), 2), (1, (), 0), (-2, (4,), 2),
         (-1, (5,), 3)]


def broadcast(operand: np.ndarray, start: int) -> np.ndarray:
    """The operand with singleton axes before `start` and after its own axes (numpy reference)."""
    return operand.reshape((1,) * start + operand.shape + (1,) * (len(SHAPE) - start - operand.ndim))


@pytest.mark.parametrize(("kind", "combine"), [("Scale", np.multiply), ("Bias", np.add)])
@pytest.mark.parametrize(("axis", "operand_shape", "start"), CASES)
def test_second_bottom_broadcasts(kind, combine, axis, operand_shape, start):
    field = "scale_param" if kind == "Scale" else "bias_param"
    layer = make_layer(f'name: "s" type: "{kind}" {field} {{ axis: {axis} }}', SHAPE, operand_shape)
    x, operand = torch.randn(SHAPE), torch.randn(operand_shape)
    (top,) = layer(x, operand)
    np.testing.assert_allclose(top.numpy(), combine(x.numpy(), broadcast(operand.numpy(), start)), rtol=1e-6)


@pytest.mark.parametrize(("axis", "num_axes", "blob_shape", "start"), [
    (1, 1, (3,), 1), (1, 2, (3, 4), 1), (0, -1, SHAPE, 0), (2, -1, (4, 5), 2), (1, 0, (), 0)])
def test_learned_scale_shape_and_forward(axis, num_axes, blob_shape, start):
    layer = make_layer(f'name: "s" type: "Scale" scale_param {{ axis: {axis} num_axes: {num_axes} '
                       'filler { type: "gaussian" } }', SHAPE)
    assert layer.blob_names == ("scale",) and layer.scale.shape == blob_shape
    x = torch.randn(SHAPE)
    expected = x.numpy() * broadcast(layer.scale.detach().numpy(), start)
    np.testing.assert_allclose(layer(x)[0].detach().numpy(), expected, rtol=1e-6)


def test_scale_defaults_to_one_and_its_bias_to_zero():
    layer = make_layer('name: "s" type: "Scale" scale_param { bias_term: true }', SHAPE)
    assert layer.blob_names == ("scale", "bias")
    assert layer.scale.detach().eq(1).all() and layer.bias.detach().eq(0).all() and layer.bias.shape == (3,)


def test_scale_with_bias_term():
    layer = make_layer('name: "s" type: "Scale" scale_param { bias_term: true filler { type: "gaussian" } '
                       'bias_filler { type: "gaussian" } }', SHAPE)
    x = torch.randn(SHAPE)
    expected = (x.numpy() * broadcast(layer.scale.detach().numpy(), 1)
                + broadcast(layer.bias.detach().numpy(), 1))
    np.testing.assert_allclose(layer(x)[0].detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_two_bottom_scale_with_bias_has_only_the_bias_blob():
    layer = make_layer('name: "s" type: "Scale" scale_param { axis: 1 bias_term: true }', SHAPE, (3, 4))
    assert layer.blob_names == ("bias",) and layer.bias.shape == (3, 4)


def test_learned_bias_default_is_zero():
    layer = make_layer('name: "b" type: "Bias"', SHAPE)
    assert layer.blob_names == ("bias",) and layer.bias.shape == (3,) and layer.bias.detach().eq(0).all()


@pytest.mark.parametrize("text", [
    'name: "s" type: "Scale" scale_param { bias_term: true filler { type: "gaussian" } '
    'bias_filler { type: "gaussian" } }',
    'name: "b" type: "Bias" bias_param { axis: 2 num_axes: 2 filler { type: "gaussian" } }',
])
def test_learned_gradients(text):
    gradcheck_layer(make_layer(text, (2, 3, 2, 2)), torch.randn(2, 3, 2, 2))


@pytest.mark.parametrize("kind", ["Scale", "Bias"])
def test_gradients_reach_the_second_bottom(kind):
    layer = make_layer(f'name: "s" type: "{kind}"', (2, 3, 2, 2), (3, 2))
    gradcheck_layer(layer, torch.randn(2, 3, 2, 2), torch.randn(3, 2))


def test_mismatched_operand_is_a_user_error():
    with pytest.raises(UserError, match=r"must equal axes 1\.\. of the first"):
        make_layer('name: "s" type: "Scale"', SHAPE, (4,))
    with pytest.raises(UserError, match=r"axis 1 \+ num_axes 4 runs past the 4 axes"):
        make_layer('name: "s" type: "Scale" scale_param { num_axes: 4 }', SHAPE)
