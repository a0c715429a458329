"""Helpers shared by the layer tests (build a layer from prototxt text, gradient-check it), plus
checks of the layer contract itself."""
import pytest
import torch
from google.protobuf import text_format
from torch.func import functional_call

from digitslite.caffe import caffe_pb2
from digitslite.engine.layers import LAYERS, CaffeLayer
from digitslite.errors import UserError


def make_layer(text: str, *bottom_shapes, phase: int = caffe_pb2.TRAIN, seed: int = 0) -> CaffeLayer:
    """Build the layer described by a LayerParameter in prototxt text for the given bottom shapes."""
    param = text_format.Parse(text, caffe_pb2.LayerParameter())
    shapes = [tuple(shape) for shape in bottom_shapes]
    return LAYERS[param.type](param, shapes, phase, torch.Generator().manual_seed(seed))


def gradcheck_layer(layer: CaffeLayer, *bottoms: torch.Tensor, wrt: tuple[int, ...] | None = None) -> None:
    """torch.autograd.gradcheck, in float64, of every top w.r.t. the chosen bottoms and all parameters."""
    layer = layer.double()
    names = [name for name, _ in layer.named_parameters()]
    params = [value.detach().clone().requires_grad_() for _, value in layer.named_parameters()]
    wrt = tuple(range(len(bottoms))) if wrt is None else wrt
    inputs = [bottom.double().requires_grad_(index in wrt) for index, bottom in enumerate(bottoms)]

    def tops(*args):
        bound = dict(zip(names, args[:len(names)], strict=True))
        return functional_call(layer, bound, tuple(args[len(names):]))

    assert torch.autograd.gradcheck(tops, (*params, *inputs), eps=1e-6, atol=1e-6, rtol=1e-4,
                                    fast_mode=True)


def test_user_errors_name_the_layer_and_the_fix():
    message = r"layer 'ip' \(InnerProduct\): axis 4 is out of range.*use an axis"
    with pytest.raises(UserError, match=message):
        make_layer('name: "ip" type: "InnerProduct" inner_product_param { num_output: 2 axis: 4 }', (2, 3))


def test_a_bad_filler_is_reported_with_its_layer_and_field():
    with pytest.raises(UserError, match=r"layer 'c' \(Convolution\) weight_filler: filler type 'nope'"):
        make_layer('name: "c" type: "Convolution" convolution_param { num_output: 1 kernel_size: 1 '
                   'weight_filler { type: "nope" } }', (1, 1, 2, 2))


def test_wrong_number_of_bottoms_is_a_user_error():
    with pytest.raises(UserError, match=r"takes 2 bottom\(s\), got 1"):
        make_layer('name: "crop" type: "Crop"', (1, 1, 4, 4))
