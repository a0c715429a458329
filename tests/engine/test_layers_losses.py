"""Loss layers (§7.6, §7.13): SoftmaxWithLoss, EuclideanLoss and SigmoidCrossEntropyLoss."""
import math

import numpy as np
import pytest
import torch

from digitslite.errors import UserError
from tests.engine.test_layers_support import gradcheck_layer, make_layer

SCORES, LABELS = (10, 5, 2, 3), (10, 1, 2, 3)


def softmax_loss(body: str = "", scores=SCORES, labels=LABELS, tops: int = 1):
    top_lines = " ".join(f'top: "t{i}"' for i in range(tops))
    return make_layer(f'name: "loss" type: "SoftmaxWithLoss" {top_lines} {body}', scores, labels).double()


def fixture(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(SCORES, generator=generator, dtype=torch.float64) * 3
    labels = torch.randint(0, 5, LABELS, generator=generator).double()
    return scores, labels


def softmax_reference(scores, labels, ignore=None):
    """Per-position −log p_label (0 where ignored), the gradient numerator p − onehot, and the kept mask."""
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    prob = e / e.sum(axis=1, keepdims=True)
    labels = labels.reshape(scores.shape[0], *scores.shape[2:]).astype(int)
    kept = labels != ignore
    onehot = np.moveaxis(np.eye(scores.shape[1])[np.where(kept, labels, 0)], -1, 1)
    picked = np.take_along_axis(prob, np.where(kept, labels, 0)[:, None], axis=1)[:, 0]
    return np.where(kept, -np.log(picked), 0), (prob - onehot) * kept[:, None], kept


@pytest.mark.parametrize(("body", "divisor"), [
    ("", lambda kept: kept.sum()),
    ("loss_param { normalization: FULL }", lambda kept: kept.size),
    ("loss_param { normalization: BATCH_SIZE }", lambda kept: 10),
    ("loss_param { normalization: NONE }", lambda kept: 1),
    ("loss_param { normalize: false }", lambda kept: 10),
    ("loss_param { normalize: true }", lambda kept: kept.sum()),
    ("loss_param { ignore_label: 2 }", lambda kept: kept.sum()),
    ("loss_param { ignore_label: 2 normalization: FULL }", lambda kept: kept.size),
])
def test_softmax_loss_value_and_gradient(body, divisor):
    scores, labels = fixture()
    ignore = 2 if "ignore_label" in body else None
    losses, numerator, kept = softmax_reference(scores.numpy(), labels.numpy(), ignore)
    scores.requires_grad_()
    (loss,) = softmax_loss(body)(scores, labels)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(losses.sum() / divisor(kept), rel=1e-10)
    (loss * 3).backward()  # loss_weight 3 seeds the top's diff
    np.testing.assert_allclose(scores.grad.numpy(), 3 * numerator / divisor(kept), atol=1e-12)


def test_ignoring_each_label_in_turn_sums_to_four_times_the_full_loss():
    scores, labels = fixture(1)
    (full,) = softmax_loss("loss_param { normalize: false }")(scores, labels)
    ignored = [softmax_loss(f"loss_param {{ normalize: false ignore_label: {label} }}")(scores, labels)[0]
               for label in range(5)]
    assert sum(ignored).item() == pytest.approx(4 * full.item(), abs=1e-4)


def test_softmax_loss_along_another_axis():
    scores, labels = torch.randn(2, 3, 4, dtype=torch.float64), torch.randint(0, 4, (2, 3)).double()
    (loss,) = softmax_loss("softmax_param { axis: 2 }", (2, 3, 4), (2, 3))(scores, labels)
    losses, _, _ = softmax_reference(scores.permute(0, 2, 1).numpy(), labels.numpy())
    assert loss.item() == pytest.approx(losses.mean(), rel=1e-10)


def test_underflowed_probability_is_clamped_at_flt_min_but_keeps_its_gradient():
    scores = torch.tensor([[0.0, -200.0]], dtype=torch.float64, requires_grad=True)
    (loss,) = softmax_loss("", (1, 2), (1,))(scores, torch.tensor([1.0], dtype=torch.float64))
    assert loss.item() == pytest.approx(-math.log(1.1754943508222875e-38))
    loss.backward()
    torch.testing.assert_close(scores.grad, torch.tensor([[1.0, -1.0]], dtype=torch.float64))


def test_all_ignored_batch_gives_zero_loss():
    scores = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    (loss,) = softmax_loss("loss_param { ignore_label: 255 }", (2, 3), (2,))(scores, torch.full((2,), 255.0))
    loss.backward()
    assert loss.item() == 0 and scores.grad.eq(0).all()


def test_second_top_is_the_softmax_without_a_gradient_path():
    scores, labels = fixture(2)
    _, prob = softmax_loss("", tops=2)(scores, labels)
    torch.testing.assert_close(prob, torch.softmax(scores, dim=1))
    assert not prob.requires_grad


def test_softmax_loss_gradcheck():
    scores, labels = torch.randn(3, 4, 2), torch.tensor([[0.0, 3.0], [1.0, 255.0], [2.0, 2.0]])
    layer = softmax_loss("loss_param { ignore_label: 255 }", (3, 4, 2), (3, 2))
    gradcheck_layer(layer, scores, labels, wrt=(0,))


def test_softmax_loss_refuses_labels_out_of_range():
    with pytest.raises(UserError, match="label 5 is outside the 5 classes"):
        softmax_loss("", (2, 5), (2,))(torch.randn(2, 5, dtype=torch.float64), torch.tensor([0.0, 5.0]))


def test_softmax_loss_needs_one_label_per_position():
    with pytest.raises(UserError, match="one label per position"):
        softmax_loss("", (10, 5, 2, 3), (10, 1, 2, 2))


def test_softmax_loss_checks_the_label_count_of_each_batch():
    layer = softmax_loss("", (2, 5), (2,))
    with pytest.raises(UserError, match="3 labels for 2×1"):
        layer(torch.randn(2, 5, dtype=torch.float64), torch.zeros(3))


def euclidean(shape=(10, 5, 1, 1)):
    return make_layer('name: "l2" type: "EuclideanLoss"', shape, shape).double()


def test_euclidean_loss_value_and_both_gradients():
    a = torch.randn(10, 5, 1, 1, dtype=torch.float64, requires_grad=True)
    b = torch.randn(10, 5, 1, 1, dtype=torch.float64, requires_grad=True)
    (loss,) = euclidean()(a, b)
    difference = (a - b).detach().numpy()
    assert loss.item() == pytest.approx((difference ** 2).sum() / 20)
    (3.7 * loss).backward()
    np.testing.assert_allclose(a.grad.numpy(), 3.7 * difference / 10)
    np.testing.assert_allclose(b.grad.numpy(), -3.7 * difference / 10)


def test_euclidean_loss_accepts_a_differently_shaped_target_of_equal_count():
    layer = make_layer('name: "l2" type: "EuclideanLoss"', (4, 3), (4, 3, 1, 1))
    assert layer(torch.ones(4, 3), torch.zeros(4, 3, 1, 1))[0].item() == pytest.approx(12 / 8)
    with pytest.raises(UserError, match="must share their first axis"):
        make_layer('name: "l2" type: "EuclideanLoss"', (4, 3), (3, 4))


def sigmoid_ce(body: str = "", shape=(10, 5, 1, 1)):
    return make_layer(f'name: "ce" type: "SigmoidCrossEntropyLoss" {body}', shape, shape).double()


@pytest.mark.parametrize(("x", "t", "expected"), [(2.0, 1.0, 0.126928), (-1.0, 0.0, 0.313262),
                                                   (0.5, 0.3, 0.824077)])
def test_sigmoid_cross_entropy_derived_values(x, t, expected):
    layer = sigmoid_ce(shape=(1,))
    (loss,) = layer(torch.tensor([x], dtype=torch.float64), torch.tensor([t], dtype=torch.float64))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_sigmoid_cross_entropy_is_normalised_by_batch_size_by_default():
    x = torch.randn(10, 5, 1, 1, dtype=torch.float64, requires_grad=True)
    t = torch.rand(10, 5, 1, 1, dtype=torch.float64)
    (loss,) = sigmoid_ce()(x, t)
    p = 1 / (1 + np.exp(-x.detach().numpy()))
    expected = -(t.numpy() * np.log(p) + (1 - t.numpy()) * np.log(1 - p)).sum() / 10
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    (3.7 * loss).backward()
    np.testing.assert_allclose(x.grad.numpy(), 3.7 * (p - t.numpy()) / 10, atol=1e-12)


def test_sigmoid_cross_entropy_ignored_targets_get_exactly_zero_gradient():
    x = torch.randn(10, 5, 1, 1, dtype=torch.float64, requires_grad=True)
    t = torch.rand(10, 5, 1, 1, dtype=torch.float64)
    t[:5] = -1
    (loss,) = sigmoid_ce("loss_param { ignore_label: -1 normalization: VALID }")(x, t)
    p = 1 / (1 + np.exp(-x.detach().numpy()[5:]))
    kept = t.numpy()[5:]
    expected = -(kept * np.log(p) + (1 - kept) * np.log(1 - p)).sum() / 25
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    loss.backward()
    assert x.grad[:5].eq(0).all() and x.grad[5:].ne(0).all()


def test_sigmoid_cross_entropy_gradient_at_zero_is_sigmoid_minus_target():
    x = torch.zeros(2, 1, dtype=torch.float64, requires_grad=True)
    sigmoid_ce(shape=(2, 1))(x, torch.tensor([[0.0], [1.0]], dtype=torch.float64))[0].backward()
    torch.testing.assert_close(x.grad, torch.tensor([[0.25], [-0.25]], dtype=torch.float64))


@pytest.mark.parametrize("text", ['name: "l2" type: "EuclideanLoss"',
                                  'name: "ce" type: "SigmoidCrossEntropyLoss"'])
def test_gradchecks(text):
    layer = make_layer(text, (3, 2), (3, 2))
    wrt = (0, 1) if "Euclidean" in text else (0,)
    gradcheck_layer(layer, torch.randn(3, 2), torch.rand(3, 2), wrt=wrt)
