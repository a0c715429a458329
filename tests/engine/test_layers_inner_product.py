"""InnerProduct (§7.13 test_inner_product_layer): shapes, transpose layout, numpy reference, gradients."""
import numpy as np
import pytest
import torch

from digitslite.errors import UserError
from tests.engine.test_layers_support import gradcheck_layer, make_layer

FILLERS = 'weight_filler { type: "gaussian" } bias_filler { type: "gaussian" }'


def inner_product(body: str, shape):
    return make_layer(f'name: "ip" type: "InnerProduct" inner_product_param {{ {body} }}', shape)


def test_shapes_and_weight_layout():
    layer = inner_product("num_output: 10", (2, 3, 4, 5))
    assert layer.weight.shape == (10, 60) and layer.bias.shape == (10,)
    assert layer(torch.randn(2, 3, 4, 5))[0].shape == (2, 10)
    transposed = inner_product("num_output: 10 transpose: true", (2, 3, 4, 5))
    assert transposed.weight.shape == (60, 10)


def test_no_bias_term():
    layer = inner_product("num_output: 3 bias_term: false", (2, 4))
    assert layer.blob_names == ("weight",) and layer.bias is None


@pytest.mark.parametrize(("axis", "shape"), [(1, (2, 3, 4, 5)), (2, (2, 3, 4, 5)), (-1, (2, 3, 4)),
                                             (0, (3, 4))])
def test_matches_numpy_reference(axis, shape):
    layer = inner_product(f"num_output: 7 axis: {axis} {FILLERS}", shape)
    x = torch.randn(shape)
    (top,) = layer(x)
    start = axis % len(shape)
    rows = x.numpy().reshape(int(np.prod(shape[:start])), -1)
    expected = rows @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()
    assert top.shape == (*shape[:start], 7)
    np.testing.assert_allclose(top.detach().numpy().reshape(-1, 7), expected, rtol=1e-5, atol=1e-5)


def test_transpose_with_transposed_weights_gives_the_same_output():
    plain = inner_product(f"num_output: 10 {FILLERS}", (2, 3, 4, 5))
    transposed = inner_product("num_output: 10 transpose: true", (2, 3, 4, 5))
    transposed.weight.data = plain.weight.detach().t().clone()
    transposed.bias.data = plain.bias.detach().clone()
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(transposed(x)[0], plain(x)[0])


def test_uniform_positive_weights_give_outputs_of_at_least_one():
    layer = inner_product('num_output: 10 weight_filler { type: "uniform" min: 1 max: 2 } '
                          'bias_filler { type: "uniform" min: 1 max: 2 }', (1, 2, 3, 4))
    (top,) = layer(torch.rand(1, 2, 3, 4))
    assert top.shape == (1, 10) and (top >= 1).all()


@pytest.mark.parametrize("transpose", ["false", "true"])
def test_gradients(transpose):
    layer = inner_product(f"num_output: 3 transpose: {transpose} {FILLERS}", (2, 2, 3))
    gradcheck_layer(layer, torch.randn(2, 2, 3))


def test_num_output_is_required():
    with pytest.raises(UserError, match="num_output"):
        inner_product("", (2, 3))
