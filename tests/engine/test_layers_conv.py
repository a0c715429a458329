"""Convolution and Deconvolution: caffe-spec §7.2/§7.3 vectors and a naive numpy reference."""
import itertools

import numpy as np
import pytest
import torch

from digitslite.errors import UserError
from tests.engine.test_layers_support import gradcheck_layer, make_layer


def conv_text(body: str, kind: str = "Convolution") -> str:
    return f'name: "c" type: "{kind}" convolution_param {{ {body} }}'


def naive_conv(x, w, b, stride, pad, dilation, group):
    """Caffe's caffe_conv reference: explicit loops over taps, skipping those outside the input."""
    n, _, *size = x.shape
    outputs, per_group, *kernel = w.shape
    out_size = [(s + 2 * p - (d * (k - 1) + 1)) // st + 1
                for s, k, st, p, d in zip(size, kernel, stride, pad, dilation, strict=True)]
    y = np.zeros((n, outputs, *out_size))
    out_per_group = outputs // group
    for o in range(outputs):
        g = o // out_per_group
        for position in itertools.product(*map(range, out_size)):
            for c in range(per_group):
                for tap in itertools.product(*map(range, kernel)):
                    where = [q * st - p + t * d
                             for q, st, p, t, d in zip(position, stride, pad, tap, dilation, strict=True)]
                    if all(0 <= i < s for i, s in zip(where, size, strict=True)):
                        y[(slice(None), o, *position)] += (
                            w[(o, c, *tap)] * x[(slice(None), g * per_group + c, *where)])
        y[:, o] += b[o] if b is not None else 0
    return y


def naive_deconv(x, w, b, stride, pad, dilation, group):
    """Transposed convolution by scattering every input value through the kernel (col2im)."""
    n, channels, *size = x.shape
    _, out_per_group, *kernel = w.shape
    out_size = [st * (s - 1) + d * (k - 1) + 1 - 2 * p
                for s, k, st, p, d in zip(size, kernel, stride, pad, dilation, strict=True)]
    in_per_group = channels // group
    y = np.zeros((n, out_per_group * group, *out_size))
    for c in range(channels):
        g = c // in_per_group
        for position in itertools.product(*map(range, size)):
            for o in range(out_per_group):
                for tap in itertools.product(*map(range, kernel)):
                    where = [q * st - p + t * d
                             for q, st, p, t, d in zip(position, stride, pad, tap, dilation, strict=True)]
                    if all(0 <= i < s for i, s in zip(where, out_size, strict=True)):
                        y[(slice(None), g * out_per_group + o, *where)] += (
                            w[(c, o, *tap)] * x[(slice(None), c, *position)])
    if b is not None:
        y += b.reshape(1, -1, *([1] * len(size)))
    return y


FILLERS = 'weight_filler { type: "gaussian" } bias_filler { type: "gaussian" }'


def compare_with_reference(kind, body, shape, stride, pad, dilation, group, reference):
    layer = make_layer(conv_text(f"{body} {FILLERS}", kind), shape)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    (top,) = layer(x)
    bias = layer.bias.detach().numpy() if layer.bias is not None else None
    expected = reference(x.numpy().astype(np.float64), layer.weight.detach().numpy().astype(np.float64), bias,
                         stride, pad, dilation, group)
    np.testing.assert_allclose(top.detach().numpy(), expected, atol=1e-4)


@pytest.mark.parametrize(("body", "shape", "stride", "pad", "dilation", "group"), [
    ("num_output: 4 kernel_size: 3 stride: 2", (2, 3, 6, 4), (2, 2), (0, 0), (1, 1), 1),
    ("num_output: 4 kernel_size: 3 dilation: 2", (2, 3, 8, 7), (1, 1), (0, 0), (2, 2), 1),
    ("num_output: 3 kernel_size: 3 group: 3", (2, 3, 6, 4), (1, 1), (0, 0), (1, 1), 3),
    ("num_output: 2 kernel_size: 1", (2, 3, 4, 4), (1, 1), (0, 0), (1, 1), 1),
    ("num_output: 2 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 2",
     (1, 2, 5, 4), (2, 1), (1, 2), (1, 1), 1),
    ("num_output: 2 kernel_size: [3, 2] stride: [1, 2] pad: [2, 1] dilation: [1, 2]",
     (1, 2, 5, 6), (1, 2), (2, 1), (1, 2), 1),
    ("num_output: 2 kernel_size: 3 stride: 2", (2, 3, 5, 6, 4), (2, 2, 2), (0, 0, 0), (1, 1, 1), 1),
    ("num_output: 2 kernel_size: 3 dilation: 2", (1, 2, 6, 7, 8), (1, 1, 1), (0, 0, 0), (2, 2, 2), 1),
])
def test_convolution_matches_naive_reference(body, shape, stride, pad, dilation, group):
    compare_with_reference("Convolution", body, shape, stride, pad, dilation, group, naive_conv)


@pytest.mark.parametrize(("body", "shape", "stride", "pad", "dilation", "group"), [
    ("num_output: 4 kernel_size: 3 stride: 2", (2, 3, 6, 4), (2, 2), (0, 0), (1, 1), 1),
    ("num_output: 6 kernel_size: 4 stride: 2 pad: 1 group: 3", (1, 3, 3, 4), (2, 2), (1, 1), (1, 1), 3),
    ("num_output: 2 kernel_size: 3 stride: 2 dilation: 2 pad: 1", (1, 2, 3, 3), (2, 2), (1, 1), (2, 2), 1),
])
def test_deconvolution_matches_naive_reference(body, shape, stride, pad, dilation, group):
    compare_with_reference("Deconvolution", body, shape, stride, pad, dilation, group, naive_deconv)


def test_setup_shapes_with_two_bottoms_and_groups():
    layer = make_layer(conv_text("num_output: 4 kernel_size: 3 stride: 2"), (2, 3, 6, 4), (2, 3, 6, 4))
    tops = layer(torch.randn(2, 3, 6, 4), torch.randn(2, 3, 6, 4))
    assert [t.shape for t in tops] == [(2, 4, 2, 1), (2, 4, 2, 1)]
    assert layer.weight.shape == (4, 3, 3, 3) and layer.bias.shape == (4,)
    grouped = make_layer(conv_text("num_output: 3 kernel_size: 3 stride: 2 group: 3"), (2, 3, 6, 4))
    assert grouped(torch.randn(2, 3, 6, 4))[0].shape == (2, 3, 2, 1)
    assert grouped.weight.shape == (3, 1, 3, 3)


def test_two_bottoms_share_the_weights():
    layer = make_layer(conv_text(f"num_output: 2 kernel_size: 3 {FILLERS}"), (1, 2, 5, 5), (1, 2, 5, 5))
    x = torch.randn(1, 2, 5, 5)
    first, second = layer(x, x)
    assert torch.equal(first, second)


def test_weights_default_to_constant_zero_and_bias_can_be_dropped():
    layer = make_layer(conv_text("num_output: 2 kernel_size: 1 bias_term: false"), (1, 1, 2, 2))
    assert layer.blob_names == ("weight",) and layer.bias is None
    assert torch.equal(layer.weight.detach(), torch.zeros(2, 1, 1, 1))


def test_sobel_equals_two_separable_strided_filters():
    x = torch.randn(2, 3, 6, 4, generator=torch.Generator().manual_seed(1))
    sobel = make_layer(conv_text("num_output: 1 kernel_size: 3 stride: 2 bias_term: false"), (2, 3, 6, 4))
    sobel.weight.data[:] = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    vertical = make_layer(conv_text("num_output: 1 kernel_h: 3 kernel_w: 1 stride_h: 2 stride_w: 1 "
                                    "bias_term: false"), (2, 3, 6, 4))
    vertical.weight.data[:] = torch.tensor([1.0, 2, 1]).reshape(3, 1)
    (middle,) = vertical(x)
    horizontal = make_layer(conv_text("num_output: 1 kernel_h: 1 kernel_w: 3 stride_h: 1 stride_w: 2 "
                                      "bias_term: false"), tuple(middle.shape))
    horizontal.weight.data[:] = torch.tensor([-1.0, 0, 1])
    torch.testing.assert_close(horizontal(middle)[0], sobel(x)[0])


def test_0d_convolution_is_a_per_position_dot_product():
    layer = make_layer(conv_text(f"num_output: 3 kernel_size: 3 axis: 3 {FILLERS}"), (2, 3, 6, 4))
    x = torch.randn(2, 3, 6, 4)
    (top,) = layer(x)
    assert top.shape == (2, 3, 6, 3) and layer.weight.shape == (3, 4)
    weight, bias = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    expected = np.einsum("nhwc,dc->nhwd", x.numpy(), weight) + bias
    np.testing.assert_allclose(top.detach().numpy(), expected, atol=1e-5)


def test_deconvolution_setup_shapes_and_weight_layout():
    layer = make_layer(conv_text("num_output: 4 kernel_size: 3 stride: 2", "Deconvolution"), (2, 3, 6, 4))
    assert layer(torch.randn(2, 3, 6, 4))[0].shape == (2, 4, 13, 9)
    assert layer.weight.shape == (3, 4, 3, 3)
    grouped = make_layer(conv_text("num_output: 3 kernel_size: 3 stride: 2 group: 3", "Deconvolution"),
                         (2, 3, 6, 4))
    assert grouped(torch.randn(2, 3, 6, 4))[0].shape == (2, 3, 13, 9)
    assert grouped.weight.shape == (3, 1, 3, 3)


def test_simple_deconvolution_vector():
    layer = make_layer(conv_text('num_output: 4 kernel_size: 3 stride: 2 weight_filler { type: "constant" '
                                 'value: 1 } bias_filler { type: "constant" value: 0.1 }', "Deconvolution"),
                       (2, 3, 6, 4))
    (top,) = layer(torch.ones(2, 3, 6, 4))

    def overlap(index, size):
        return index % 2 == 0 and 0 < index < size - 1

    def value(h, w):
        rows, cols = overlap(h, 13), overlap(w, 9)
        return 3.1 + (9 if rows and cols else 3 if rows or cols else 0)

    expected = torch.tensor([[value(h, w) for w in range(9)] for h in range(13)])
    torch.testing.assert_close(top, expected.expand(2, 4, 13, 9))


@pytest.mark.parametrize(("kind", "body", "shapes"), [
    ("Convolution", "num_output: 2 kernel_size: 3 stride: 2", [(2, 3, 6, 4), (2, 3, 6, 4)]),
    ("Convolution", "num_output: 2 kernel_size: 3 dilation: 2 pad: 1", [(1, 2, 6, 5)]),
    ("Convolution", "num_output: 3 kernel_size: 2 group: 3", [(1, 3, 4, 4)]),
    ("Convolution", "num_output: 2 kernel_size: 2", [(1, 2, 3, 3, 3)]),
    ("Deconvolution", "num_output: 1 kernel_size: 2 stride: 1", [(2, 3, 3, 3)]),
    ("Deconvolution", "num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2", [(1, 2, 3, 3)]),
])
def test_gradients(kind, body, shapes):
    layer = make_layer(conv_text(f"{body} {FILLERS}", kind), *shapes)
    gradcheck_layer(layer, *[torch.randn(shape) for shape in shapes])


@pytest.mark.parametrize(("body", "message"), [
    ("num_output: 4 kernel_size: 3 group: 2", "group 2 must divide both the 3 input channels"),
    ("num_output: 4 kernel_size: 3 kernel_h: 3 kernel_w: 3", "give either kernel_size or kernel_h/kernel_w"),
    ("num_output: 4", "the kernel size is not set"),
    ("num_output: 4 kernel_size: [1, 2, 3]", "kernel_size has 3 values for 2 spatial axes"),
    ("kernel_size: 3", "num_output is not set"),
    ("num_output: 4 kernel_size: 3 stride_h: 2", "stride_h and stride_w must be given together"),
    ("num_output: 4 kernel_size: 3 pad: 1 pad_h: 1", "pad_h and pad_w must be given together"),
])
def test_bad_parameters_are_user_errors(body, message):
    with pytest.raises(UserError, match=message):
        make_layer(conv_text(body), (1, 3, 8, 8))


def test_kernel_larger_than_the_padded_input_is_a_user_error():
    with pytest.raises(UserError, match="an input of size 3 gives no output with kernel extent 5"):
        make_layer(conv_text("num_output: 1 kernel_size: 5"), (1, 1, 3, 3))
    layer = make_layer(conv_text("num_output: 1 kernel_size: 5"), (1, 1, 8, 8))  # then run on less
    with pytest.raises(UserError, match="kernel extent 5 leaves no output for the input size 3"):
        layer(torch.zeros(1, 1, 3, 3))
