"""Eltwise (§7.13 test_eltwise_layer): PROD, SUM with coefficients, MAX with Caffe's tie rule."""
import pytest
import torch

from digitslite.errors import UserError
from tests.engine.test_layers_support import gradcheck_layer, make_layer

SHAPE = (2, 3, 4, 5)


def eltwise(body: str, bottoms: int = 3):
    return make_layer(f'name: "e" type: "Eltwise" eltwise_param {{ {body} }}', *[SHAPE] * bottoms)


def three() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(SHAPE, generator=generator, dtype=torch.float64) for _ in range(3)]


def test_prod():
    a, b, c = three()
    torch.testing.assert_close(eltwise("operation: PROD").double()(a, b, c)[0], a * b * c)


def test_sum_is_the_default():
    a, b, c = three()
    torch.testing.assert_close(eltwise("").double()(a, b, c)[0], a + b + c)


def test_sum_with_coefficients():
    a, b, c = three()
    (top,) = eltwise("coeff: 1 coeff: -0.5 coeff: 2").double()(a, b, c)
    torch.testing.assert_close(top, a - 0.5 * b + 2 * c)


def test_max():
    a, b, c = three()
    (top,) = eltwise("operation: MAX").double()(a, b, c)
    torch.testing.assert_close(top, torch.maximum(torch.maximum(a, b), c))


def test_max_ties_go_to_the_second_bottom_then_need_a_strict_win():
    first, second, third = (torch.ones(SHAPE, requires_grad=True) for _ in range(3))
    eltwise("operation: MAX")(first, second, third)[0].sum().backward()
    assert first.grad.eq(0).all() and second.grad.eq(1).all() and third.grad.eq(0).all()


@pytest.mark.parametrize("body", ["operation: PROD", "operation: PROD stable_prod_grad: false",
                                  "coeff: 1 coeff: -0.5 coeff: 2", "operation: MAX"])
def test_gradients(body):
    gradcheck_layer(eltwise(body), *three())


def test_prod_gradient_is_the_product_of_the_others_even_at_zero():
    a = torch.zeros(SHAPE, requires_grad=True)
    b, c = torch.full(SHAPE, 2.0), torch.full(SHAPE, 3.0)
    eltwise("operation: PROD")(a, b, c)[0].sum().backward()
    assert a.grad.eq(6).all()


@pytest.mark.parametrize(("body", "message"), [
    ("operation: MAX coeff: 1 coeff: 1 coeff: 1", "coeff is only allowed with operation SUM"),
    ("coeff: 1 coeff: 2", "2 coeff value\\(s\\) for 3 bottoms"),
])
def test_bad_parameters_are_user_errors(body, message):
    with pytest.raises(UserError, match=message):
        eltwise(body)


def test_bottoms_must_share_a_shape():
    with pytest.raises(UserError, match="all bottoms must have the same shape"):
        make_layer('name: "e" type: "Eltwise"', SHAPE, (2, 3, 4, 4))
