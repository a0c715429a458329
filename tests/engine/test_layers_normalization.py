"""LRN (§7.4) and BatchNorm (§2.6, §7.13): hand vectors, loop references, stored statistics, gradients."""
import numpy as np
import pytest
import torch

from digitslite.caffe import caffe_pb2
from digitslite.errors import UserError
from tests.engine.test_layers_support import gradcheck_layer, make_layer

LRN_SHAPE = (2, 7, 3, 3)


def lrn(body: str = "", shape=LRN_SHAPE):
    return make_layer(f'name: "norm" type: "LRN" lrn_param {{ {body} }}', shape).double()


def lrn_reference(x, size, alpha, beta, k, across):
    """test_lrn_layer.cpp's reference: sums over the window clipped to the blob."""
    _, c, h, w = x.shape
    half = (size - 1) // 2
    y = np.empty_like(x)
    for index in np.ndindex(x.shape):
        i, ch, row, col = index
        if across:
            window = x[i, max(ch - half, 0):min(ch + half + 1, c), row, col]
            scale = k + (window ** 2).sum() * alpha / size
        else:
            rows = slice(max(row - half, 0), min(row + half + 1, h))
            window = x[i, ch, rows, max(col - half, 0):min(col + half + 1, w)]
            scale = 1 + (window ** 2).sum() * alpha / size ** 2
        y[index] = x[index] / scale ** beta
    return y


def test_across_channels_hand_example():
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64).reshape(1, 3, 1, 1)
    (top,) = lrn("local_size: 3", (1, 3, 1, 1))(x)
    expected = torch.tensor([0.479207, 0.544546, 0.854815], dtype=torch.float64)
    torch.testing.assert_close(top.flatten(), expected, atol=1e-6, rtol=0)


def test_within_channel_hand_example():
    x = torch.arange(1.0, 10.0, dtype=torch.float64).reshape(1, 1, 3, 3)
    (top,) = lrn("local_size: 3 norm_region: WITHIN_CHANNEL", (1, 1, 3, 3))(x)
    expected = torch.tensor([[0.257282, 0.328634, 0.566884], [0.445410, 0.365924, 0.531352],
                             [0.797332, 0.607300, 0.832905]], dtype=torch.float64)
    torch.testing.assert_close(top[0, 0], expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("body", "size", "alpha", "beta", "k", "across"), [
    ("", 5, 1.0, 0.75, 1.0, True),
    ("local_size: 15", 15, 1.0, 0.75, 1.0, True),
    ("local_size: 3 alpha: 0.5 beta: 0.5 k: 2", 3, 0.5, 0.5, 2.0, True),
    ("local_size: 3 norm_region: WITHIN_CHANNEL", 3, 1.0, 0.75, 1.0, False),
    ("local_size: 3 norm_region: WITHIN_CHANNEL alpha: 0.5 k: 7", 3, 0.5, 0.75, 1.0, False),
])
def test_matches_reference(body, size, alpha, beta, k, across):
    x = torch.randn(LRN_SHAPE, dtype=torch.float64)
    (top,) = lrn(body)(x)
    assert top.shape == LRN_SHAPE
    np.testing.assert_allclose(top.numpy(), lrn_reference(x.numpy(), size, alpha, beta, k, across), rtol=1e-7)


@pytest.mark.parametrize("body", ["", "local_size: 15", "local_size: 3 norm_region: WITHIN_CHANNEL"])
def test_lrn_gradients(body):
    gradcheck_layer(lrn(body), torch.randn(LRN_SHAPE))


def test_even_local_size_is_a_user_error():
    with pytest.raises(UserError, match="local_size must be odd, got 4"):
        lrn("local_size: 4")


BN_SHAPE = (5, 2, 3, 4)


def batch_norm(body: str = "", phase: int = caffe_pb2.TRAIN, shape=BN_SHAPE):
    text = f'name: "bn" type: "BatchNorm" batch_norm_param {{ {body} }}'
    return make_layer(text, shape, phase=phase).double()


def test_blobs_are_caffe_stored_sums_and_scale_factor():
    layer = batch_norm()
    assert layer.blob_names == ("mean_sum", "var_sum", "scale_factor")
    assert [tuple(blob.shape) for blob in layer.blobs()] == [(2,), (2,), (1,)]
    assert all(not blob.requires_grad and blob.eq(0).all() for blob in layer.blobs())


def test_train_forward_normalises_each_channel():
    x = torch.randn(BN_SHAPE, dtype=torch.float64) * 3 + 2
    (top,) = batch_norm()(x)
    per_channel = top.transpose(0, 1).reshape(2, -1)
    zeros, ones = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    torch.testing.assert_close(per_channel.mean(dim=1), zeros, atol=1e-3, rtol=0)
    torch.testing.assert_close(per_channel.var(dim=1, unbiased=False), ones, atol=1e-3, rtol=0)


def test_running_sums_follow_caffe_update_rule():
    layer = batch_norm()
    first = torch.randn(BN_SHAPE, dtype=torch.float64)
    second = torch.randn(BN_SHAPE, dtype=torch.float64) + 1
    layer(first)
    layer(second)
    fraction = np.float64(np.float32(0.999))
    m = 5 * 3 * 4

    def stats(x):
        values = x.transpose(0, 1).reshape(2, -1)
        return values.mean(dim=1), values.var(dim=1, unbiased=False) * m / (m - 1)

    (mean1, var1), (mean2, var2) = stats(first), stats(second)
    torch.testing.assert_close(layer.scale_factor, torch.tensor([fraction + 1], dtype=torch.float64))
    torch.testing.assert_close(layer.mean_sum, mean2 + fraction * mean1)
    torch.testing.assert_close(layer.var_sum, var2 + fraction * var1)


def test_worked_example_of_the_global_mean():
    layer = batch_norm("moving_average_fraction: 0.999", shape=(4, 1))
    layer(torch.full((4, 1), 1.0, dtype=torch.float64))
    layer(torch.full((4, 1), 3.0, dtype=torch.float64))
    assert layer.mean_sum.item() == pytest.approx(3.999, abs=1e-6)
    assert layer.scale_factor.item() == pytest.approx(1.999, abs=1e-6)
    assert (layer.mean_sum / layer.scale_factor).item() == pytest.approx(2.0005, abs=1e-4)


def test_global_stats_divide_the_sums_by_the_scale_factor():
    layer = batch_norm(phase=caffe_pb2.TEST)
    assert layer.use_global_stats
    layer.mean_sum.copy_(torch.tensor([2.0, -4.0]))
    layer.var_sum.copy_(torch.tensor([8.0, 0.5]))
    layer.scale_factor.fill_(2.0)
    x = torch.randn(BN_SHAPE, dtype=torch.float64)
    (top,) = layer(x)
    mean = torch.tensor([1.0, -2.0], dtype=torch.float64).reshape(1, 2, 1, 1)
    variance = torch.tensor([4.0, 0.25], dtype=torch.float64).reshape(1, 2, 1, 1)
    eps = np.float64(np.float32(1e-5))
    torch.testing.assert_close(top, (x - mean) / torch.sqrt(variance + eps))
    assert layer.scale_factor.item() == 2.0


def test_untrained_global_stats_normalise_with_zero_mean_and_variance():
    x = torch.randn(BN_SHAPE, dtype=torch.float64)
    (top,) = batch_norm("eps: 0.25", phase=caffe_pb2.TEST)(x)
    torch.testing.assert_close(top, x / 0.5)


def test_explicit_use_global_stats_overrides_the_phase():
    assert batch_norm("use_global_stats: true").use_global_stats
    assert not batch_norm("use_global_stats: false", phase=caffe_pb2.TEST).use_global_stats
    assert not batch_norm().use_global_stats


def test_a_one_axis_bottom_is_one_channel():
    layer = batch_norm(shape=(6,))
    x = torch.arange(6.0, dtype=torch.float64)
    (top,) = layer(x)
    torch.testing.assert_close(top, (x - 2.5) / torch.sqrt(x.var(unbiased=False) + np.float32(1e-5)))
    assert layer.var_sum.item() == pytest.approx(x.var().item())


@pytest.mark.parametrize("phase", [caffe_pb2.TRAIN, caffe_pb2.TEST])
def test_batch_norm_gradients(phase):
    layer = batch_norm(phase=phase)
    layer.mean_sum.copy_(torch.tensor([0.5, -1.0]))
    layer.var_sum.copy_(torch.tensor([2.0, 3.0]))
    layer.scale_factor.fill_(1.0)
    gradcheck_layer(layer, torch.randn(BN_SHAPE))
