"""Pooling: caffe-spec §7.1 vectors, the §2.6 size and divisor rules, and a loop-for-loop numpy reference."""
import math

import numpy as np
import pytest
import torch

from digitslite.errors import UserError
from tests.engine.test_layers_support import gradcheck_layer, make_layer

FLT_MAX = float(np.finfo(np.float32).max)
MAGIC6 = [[35, 1, 6, 26, 19, 24], [3, 32, 7, 21, 23, 25], [31, 9, 2, 22, 27, 20],
          [8, 28, 33, 17, 10, 15], [30, 5, 34, 12, 14, 16], [4, 36, 29, 13, 18, 11]]


def pool(body: str, shape, tops: int = 1):
    top_lines = " ".join(f'top: "t{i}"' for i in range(tops))
    return make_layer(f'name: "p" type: "Pooling" {top_lines} pooling_param {{ {body} }}', shape)


def tiled(rows, n=2, c=2) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).expand(n, c, len(rows), len(rows[0])).clone()


def caffe_pool(x, method, kernel, stride, pad, ceil=True):
    """Caffe's CPU pooling loops written out from caffe-spec §2.6 (size, clip, window, divisor)."""
    n, c, height, width = x.shape
    sizes = []
    for size, k, s, p in zip((height, width), kernel, stride, pad, strict=True):
        pooled = (math.ceil if ceil else math.floor)((size + 2 * p - k) / s) + 1
        if (pad[0] or pad[1]) and (pooled - 1) * s >= size + p:
            pooled -= 1
        sizes.append(pooled)
    top = np.zeros((n, c, *sizes))
    for ph in range(sizes[0]):
        for pw in range(sizes[1]):
            hs, ws = ph * stride[0] - pad[0], pw * stride[1] - pad[1]
            if method == "MAX":
                he, we = min(hs + kernel[0], height), min(ws + kernel[1], width)
                hs, ws = max(hs, 0), max(ws, 0)
                window = x[:, :, hs:he, ws:we].reshape(n, c, -1)
                top[:, :, ph, pw] = window.max(axis=2) if window.shape[2] else -FLT_MAX
            else:
                he, we = min(hs + kernel[0], height + pad[0]), min(ws + kernel[1], width + pad[1])
                divisor = (he - hs) * (we - ws)
                hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, height), min(we, width)
                top[:, :, ph, pw] = x[:, :, hs:he, ws:we].sum(axis=(2, 3)) / divisor
    return top


def test_setup_shapes():
    assert pool("kernel_size: 3 stride: 2", (2, 3, 6, 5))(torch.randn(2, 3, 6, 5))[0].shape == (2, 3, 3, 2)
    padded = pool("pool: AVE kernel_size: 3 stride: 2 pad: 1", (2, 3, 6, 5))
    assert padded(torch.randn(2, 3, 6, 5))[0].shape == (2, 3, 4, 3)
    global_pool = pool("pool: AVE global_pooling: true", (2, 3, 6, 5))
    assert global_pool(torch.randn(2, 3, 6, 5))[0].shape == (2, 3, 1, 1)


def test_forward_square_with_mask():
    layer = pool("kernel_size: 2 stride: 1", (2, 2, 3, 5), tops=2)
    top, mask = layer(tiled([[1, 2, 5, 2, 3], [9, 4, 1, 4, 8], [1, 2, 5, 2, 3]]))
    assert torch.equal(top, tiled([[9, 5, 5, 8], [9, 5, 5, 8]]))
    assert torch.equal(mask, tiled([[5, 2, 2, 9], [5, 12, 12, 9]]))


def test_forward_rect_high_with_mask():
    layer = pool("kernel_h: 3 kernel_w: 2 stride: 1", (2, 2, 6, 6), tops=2)
    top, mask = layer(tiled(MAGIC6))
    assert torch.equal(top, tiled([[35, 32, 26, 27, 27], [32, 33, 33, 27, 27], [31, 34, 34, 27, 27],
                                   [36, 36, 34, 18, 18]]))
    assert torch.equal(mask, tiled([[0, 7, 3, 16, 16], [7, 20, 20, 16, 16], [12, 26, 26, 16, 16],
                                    [31, 31, 26, 34, 34]]))


def test_forward_rect_wide_with_mask():
    layer = pool("kernel_h: 2 kernel_w: 3 stride: 1", (2, 2, 6, 6), tops=2)
    top, mask = layer(tiled(MAGIC6))
    assert torch.equal(top, tiled([[35, 32, 26, 26], [32, 32, 27, 27], [33, 33, 33, 27], [34, 34, 34, 17],
                                   [36, 36, 34, 18]]))
    assert torch.equal(mask, tiled([[0, 7, 3, 3], [7, 7, 16, 16], [20, 20, 20, 16], [26, 26, 26, 21],
                                    [31, 31, 26, 34]]))


def test_forward_max_padded():
    layer = pool("kernel_size: 3 stride: 2 pad: 2", (1, 1, 3, 3))
    (top,) = layer(tiled([[1, 2, 4], [2, 3, 2], [4, 2, 1]], 1, 1))
    assert torch.equal(top, tiled([[1, 4, 4], [4, 4, 4], [4, 4, 1]], 1, 1))


def test_forward_ave_counts_padding_in_the_divisor():
    layer = pool("pool: AVE kernel_size: 3 stride: 1 pad: 1", (1, 1, 3, 3))
    (top,) = layer(torch.full((1, 1, 3, 3), 2.0))
    expected = torch.tensor([[8 / 9, 4 / 3, 8 / 9], [4 / 3, 2, 4 / 3], [8 / 9, 4 / 3, 8 / 9]])
    torch.testing.assert_close(top[0, 0], expected)


def test_ave_divisor_excludes_the_ceil_overhang():
    # in 6, kernel 3, stride 2, pad 1: windows [-1,2), [1,4), [3,6), [5,7) with divisors 3, 3, 3, 2.
    layer = pool("pool: AVE kernel_h: 1 kernel_w: 3 stride_h: 1 stride_w: 2 pad_h: 0 pad_w: 1", (1, 1, 1, 6))
    x = torch.tensor([[[[1.0, 2, 3, 4, 5, 6]]]])
    (top,) = layer(x)
    torch.testing.assert_close(top[0, 0, 0], torch.tensor([3 / 3, 9 / 3, 15 / 3, 6 / 2]))


def test_unpadded_ceil_keeps_a_window_outside_the_image():
    x = torch.arange(5.0).reshape(1, 1, 1, 5)
    (top,) = pool("kernel_h: 1 kernel_w: 1 stride: 3", (1, 1, 1, 5))(x)
    assert top.shape == (1, 1, 1, 3)
    assert top[0, 0, 0].tolist() == [0.0, 3.0, -FLT_MAX]
    (average,) = pool("pool: AVE kernel_h: 1 kernel_w: 1 stride: 3", (1, 1, 1, 5))(x)
    assert average[0, 0, 0, :2].tolist() == [0.0, 3.0] and average[0, 0, 0, 2] == 0


def test_padded_pooling_clips_a_last_window_starting_in_the_right_pad():
    # in 3, kernel 2, stride 2, pad 1: ceil gives 3 windows, but the third would start at 3 >= 3 + 1 - 1.
    (top,) = pool("kernel_size: 2 stride: 2 pad: 1", (1, 1, 3, 3))(torch.randn(1, 1, 3, 3))
    assert top.shape == (1, 1, 2, 2)


def test_round_mode_floor():
    (top,) = pool("kernel_size: 2 stride: 2 round_mode: FLOOR", (1, 1, 5, 5))(torch.randn(1, 1, 5, 5))
    assert top.shape == (1, 1, 2, 2)


def test_global_max_pooling_takes_the_plane_maximum():
    x = torch.randn(2, 3, 4, 5)
    (top,) = pool("global_pooling: true", (2, 3, 4, 5))(x)
    torch.testing.assert_close(top[:, :, 0, 0], x.amax(dim=(2, 3)))


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize(("kernel", "stride", "pad"), [
    ((3, 3), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (2, 3), (2, 1)), ((4, 4), (3, 3), (3, 0)),
    ((2, 2), (2, 2), (0, 0)), ((3, 3), (1, 1), (2, 2)),
])
def test_matches_caffe_loops(method, kernel, stride, pad):
    body = (f"pool: {method} kernel_h: {kernel[0]} kernel_w: {kernel[1]} stride_h: {stride[0]} "
            f"stride_w: {stride[1]} pad_h: {pad[0]} pad_w: {pad[1]}")
    x = torch.randn(2, 2, 7, 6, dtype=torch.float64)
    (top,) = pool(body, (2, 2, 7, 6)).double()(x)
    np.testing.assert_allclose(top.numpy(), caffe_pool(x.numpy(), method, kernel, stride, pad), atol=1e-12)


def test_floor_mode_matches_caffe_loops():
    x = torch.randn(1, 2, 7, 6, dtype=torch.float64)
    (top,) = pool("pool: AVE kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR", (1, 2, 7, 6)).double()(x)
    np.testing.assert_allclose(top.numpy(), caffe_pool(x.numpy(), "AVE", (3, 3), (2, 2), (1, 1), ceil=False))


def test_max_gradient_goes_to_the_first_of_tied_elements():
    x = torch.ones(1, 1, 2, 4, requires_grad=True)
    (top,) = pool("kernel_size: 2 stride: 2", (1, 1, 2, 4))(x)
    top.sum().backward()
    assert x.grad[0, 0].tolist() == [[1, 0, 1, 0], [0, 0, 0, 0]]


def test_ave_gradient_spreads_over_the_clipped_window_by_the_divisor():
    x = torch.zeros(1, 1, 1, 6, requires_grad=True)
    layer = pool("pool: AVE kernel_h: 1 kernel_w: 3 stride_h: 1 stride_w: 2 pad_h: 0 pad_w: 1", (1, 1, 1, 6))
    layer(x)[0].sum().backward()
    expected = [1 / 3, 1 / 3 + 1 / 3, 1 / 3, 1 / 3 + 1 / 3, 1 / 3, 1 / 3 + 1 / 2]
    torch.testing.assert_close(x.grad[0, 0, 0], torch.tensor(expected))


@pytest.mark.parametrize("body", [
    "kernel_h: 3 kernel_w: 4 stride: 2 pad: 1",
    "kernel_size: 4 stride: 2 pad: 1",
    "pool: AVE kernel_size: 3 stride: 2",
    "pool: AVE kernel_size: 3 stride: 2 pad: 2",
])
def test_gradients(body):
    # A permutation keeps values distinct, so MAX has no ties within the finite-difference step.
    x = torch.randperm(2 * 2 * 6 * 5, generator=torch.Generator().manual_seed(0)).reshape(2, 2, 6, 5) / 10.0
    gradcheck_layer(pool(body, (2, 2, 6, 5)), x)


@pytest.mark.parametrize(("body", "message"), [
    ("pool: STOCHASTIC kernel_size: 2", "STOCHASTIC pooling is not supported"),
    ("kernel_size: 2 kernel_h: 2 kernel_w: 2", "give either kernel_size or both kernel_h and kernel_w"),
    ("kernel_h: 2", "give either kernel_size or both kernel_h and kernel_w"),
    ("stride: 1", "the kernel size is not set"),
    ("kernel_size: 2 pad: 2", "pad \\[2, 2\\] must be smaller than kernel"),
    ("kernel_size: 2 pad: 1 pad_h: 1 pad_w: 1", "give either pad or both pad_h and pad_w"),
    ("global_pooling: true kernel_size: 2", "global_pooling takes its kernel from the input"),
    ("global_pooling: true stride: 2", "global_pooling needs pad 0 and stride 1"),
])
def test_bad_parameters_are_user_errors(body, message):
    with pytest.raises(UserError, match=message):
        pool(body, (1, 1, 6, 6))


def test_mask_top_needs_max_pooling():
    with pytest.raises(UserError, match="mask"):
        pool("pool: AVE kernel_size: 2", (1, 1, 4, 4), tops=2)
