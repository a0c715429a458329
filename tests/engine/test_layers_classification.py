"""Softmax, ArgMax and Accuracy (§7.7, §7.13): numpy references, shapes and Caffe's tie rules."""
import numpy as np
import pytest
import torch

from digitslite.errors import UserError
from tests.engine.test_layers_support import gradcheck_layer, make_layer


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_softmax_matches_formula(axis):
    x = torch.randn(2, 10, 2, 3, dtype=torch.float64)
    (top,) = make_layer(f'name: "s" type: "Softmax" softmax_param {{ axis: {axis} }}', (2, 10, 2, 3))(x)
    e = np.exp(x.numpy())
    np.testing.assert_allclose(top.numpy(), e / e.sum(axis=axis, keepdims=True), rtol=1e-12)
    torch.testing.assert_close(top.sum(dim=axis), torch.ones_like(top.sum(dim=axis)))


def test_softmax_gradient():
    gradcheck_layer(make_layer('name: "s" type: "Softmax"', (2, 4, 2)), torch.randn(2, 4, 2))


def argmax(body: str, shape):
    return make_layer(f'name: "a" type: "ArgMax" argmax_param {{ {body} }}', shape)


@pytest.mark.parametrize(("body", "expected"), [
    ("", (3, 1, 1, 1)), ("out_max_val: true", (3, 2, 1, 1)), ("top_k: 4", (3, 1, 4, 1)),
    ("axis: 0", (1, 10, 4, 5)), ("axis: -2", (3, 10, 1, 5)), ("axis: 2 out_max_val: true", (3, 10, 1, 5)),
])
def test_argmax_top_shapes(body, expected):
    assert argmax(body, (3, 10, 4, 5))(torch.randn(3, 10, 4, 5))[0].shape == expected


def test_argmax_of_a_2d_bottom_has_three_axes():
    assert argmax("", (4, 6))(torch.randn(4, 6))[0].shape == (4, 1, 1)


@pytest.mark.parametrize("top_k", [1, 5])
def test_argmax_over_each_item_matches_brute_force(top_k):
    x = torch.randn(3, 10, 2, 2)
    indices, values = argmax(f"top_k: {top_k} out_max_val: true", (3, 10, 2, 2))(x)[0][:, :, :, 0].unbind(1)
    flat = x.reshape(3, -1).numpy()
    order = np.argsort(-flat, axis=1)[:, :top_k]
    np.testing.assert_array_equal(indices.numpy(), order)
    np.testing.assert_array_equal(values.numpy(), np.take_along_axis(flat, order, axis=1))


@pytest.mark.parametrize("top_k", [1, 3])
def test_argmax_along_an_axis_matches_brute_force(top_k):
    x = torch.randn(2, 6, 3)
    (indices,) = argmax(f"axis: 1 top_k: {top_k}", (2, 6, 3))(x)
    (values,) = argmax(f"axis: 1 top_k: {top_k} out_max_val: true", (2, 6, 3))(x)
    order = np.argsort(-x.numpy(), axis=1)[:, :top_k]
    np.testing.assert_array_equal(indices.numpy(), order)
    np.testing.assert_array_equal(values.numpy(), np.take_along_axis(x.numpy(), order, axis=1))


def test_argmax_ties_prefer_the_larger_index():
    x = torch.tensor([[1.0, 3.0, 3.0, 0.0, 3.0]])
    (top,) = argmax("top_k: 4", (1, 5))(x)
    assert top.flatten().tolist() == [4, 2, 1, 0]


def test_argmax_top_k_must_fit():
    with pytest.raises(UserError, match="top_k 11"):
        argmax("top_k: 11", (2, 10))


def accuracy(body: str, scores, labels, tops: int = 1):
    top_lines = " ".join(f'top: "t{i}"' for i in range(tops))
    return make_layer(f'name: "acc" type: "Accuracy" {top_lines} accuracy_param {{ {body} }}', scores, labels)


def accuracy_reference(scores, labels, top_k, ignore=None):
    """Correct iff fewer than top_k other classes score at least as high as the true class."""
    classes = scores.shape[1]
    scores = np.moveaxis(scores, 1, -1).reshape(-1, classes)
    labels = labels.reshape(-1).astype(int)
    correct = count = 0
    per_class_correct, per_class_count = np.zeros(classes), np.zeros(classes)
    for row, label in zip(scores, labels, strict=True):
        if label == ignore:
            continue
        hit = (row >= row[label]).sum() - 1 < top_k
        correct, count = correct + hit, count + 1
        per_class_correct[label] += hit
        per_class_count[label] += 1
    per_class = np.divide(per_class_correct, per_class_count, out=np.zeros(classes),
                          where=per_class_count > 0)
    return correct / count, per_class


@pytest.mark.parametrize("top_k", [1, 3])
def test_accuracy_matches_reference(top_k):
    scores, labels = torch.randn(100, 10), torch.randint(0, 10, (100,)).float()
    total, per_class = accuracy(f"top_k: {top_k}", (100, 10), (100,), tops=2)(scores, labels)
    expected_total, expected_per_class = accuracy_reference(scores.numpy(), labels.numpy(), top_k)
    assert total.shape == () and total.item() == pytest.approx(expected_total)
    assert per_class.shape == (10,)
    np.testing.assert_allclose(per_class.numpy(), expected_per_class, rtol=1e-6)


def test_accuracy_over_spatial_positions():
    scores, labels = torch.randn(2, 10, 4, 5), torch.randint(0, 10, (2, 4, 5)).float()
    (total,) = accuracy("", (2, 10, 4, 5), (2, 4, 5))(scores, labels)
    hits = (scores.argmax(dim=1) == labels.long()).sum().item()
    assert total.item() == pytest.approx(hits / 40)


def test_accuracy_ignore_label_leaves_positions_out_of_the_count():
    scores, labels = torch.randn(100, 10), torch.randint(0, 10, (100,)).float()
    labels[[2, 5, 32]] = -1
    total, per_class = accuracy("ignore_label: -1", (100, 10), (100,), tops=2)(scores, labels)
    kept = labels != -1
    hits = (scores[kept].argmax(dim=1) == labels[kept].long()).sum().item()
    assert total.item() == pytest.approx(hits / 97)
    expected = accuracy_reference(scores.numpy(), labels.numpy(), 1, -1)[1]
    np.testing.assert_allclose(per_class.numpy(), expected, rtol=1e-6)


def test_accuracy_ties_count_as_wrong():
    scores = torch.tensor([[1.0, 1.0, 0.0], [2.0, 1.0, 1.0]])
    (total,) = accuracy("", (2, 3), (2,))(scores, torch.tensor([0.0, 0.0]))
    assert total.item() == 0.5


def test_accuracy_with_nothing_counted_is_zero():
    (total,) = accuracy("ignore_label: 1", (2, 3), (2,))(torch.randn(2, 3), torch.ones(2))
    assert total.item() == 0


def test_accuracy_refuses_out_of_range_labels():
    layer = accuracy("", (2, 3), (2,))
    with pytest.raises(UserError, match="label 3 is outside the 3 classes"):
        layer(torch.randn(2, 3), torch.tensor([0.0, 3.0]))


def test_accuracy_label_count_must_match_positions():
    with pytest.raises(UserError, match="one label per position"):
        accuracy("", (2, 3, 4), (2, 3))
