"""Mixed precision: 16-bit bottoms keep their dtype through LRN/BatchNorm, whose statistics (like
the losses) are computed in float32 as Caffe does; results stay close to the float32 ones."""
import pytest
import torch

from tests.engine.test_layers_support import make_layer

SHAPE = (2, 6, 4, 4)


@pytest.mark.parametrize("text", [
    'name: "n" type: "LRN" lrn_param { local_size: 3 }',
    'name: "n" type: "LRN" lrn_param { local_size: 3 norm_region: WITHIN_CHANNEL }',
    'name: "n" type: "BatchNorm"',
])
def test_normalisation_keeps_a_16_bit_dtype_and_float32_accuracy(text):
    x = torch.randn(SHAPE) * 40  # squares of these overflow float16's range
    reference = make_layer(text, SHAPE)(x)[0]
    (top,) = make_layer(text, SHAPE)(x.half())
    assert top.dtype == torch.float16 and torch.isfinite(top).all()
    torch.testing.assert_close(top.float(), reference, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("text", ['name: "l" type: "SoftmaxWithLoss"', 'name: "l" type: "EuclideanLoss"',
                                  'name: "l" type: "SigmoidCrossEntropyLoss"'])
def test_losses_of_16_bit_bottoms_are_float32(text):
    scores = torch.randn(4, 5)
    target = torch.randint(0, 5, (4,)).float() if "Softmax" in text else torch.rand(4, 5)
    shapes = [(4, 5), tuple(target.shape)]
    reference = make_layer(text, *shapes)(scores, target)[0]
    half = scores.bfloat16().requires_grad_()
    (loss,) = make_layer(text, *shapes)(half, target.bfloat16())
    loss.backward()
    assert loss.dtype == torch.float32 and half.grad.dtype == torch.bfloat16
    torch.testing.assert_close(loss, reference, atol=0.05, rtol=0.02)


def test_a_layer_chain_trains_under_autocast():
    conv = make_layer('name: "c" type: "Convolution" convolution_param { num_output: 5 kernel_size: 3 pad: 1 '
                      'weight_filler { type: "xavier" } }', SHAPE)
    pool = make_layer('name: "p" type: "Pooling" pooling_param { kernel_size: 2 stride: 2 }', (2, 5, 4, 4))
    loss = make_layer('name: "l" type: "SoftmaxWithLoss"', (2, 5, 2, 2), (2, 2, 2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (value,) = loss(*pool(*conv(torch.randn(SHAPE))), torch.randint(0, 5, (2, 2, 2)).float())
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(conv.weight.grad).all()
    assert conv.weight.grad.abs().sum() > 0
