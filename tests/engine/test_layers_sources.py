"""DummyData and Parameter: layers without bottoms (the golden set covers constant DummyData and
Parameter's gradient; these are the behaviours it leaves out)."""
import torch

from digitslite.caffe.prototxt import parse_net
from digitslite.engine.net import CaffeNet
from tests.engine.test_layers_support import make_layer


def test_dummy_data_redraws_random_tops_every_pass_and_keeps_constant_ones():
    layer = make_layer('name: "d" type: "DummyData" top: "r" top: "c" dummy_data_param { '
                       'shape { dim: 2 dim: 3 } shape { dim: 4 } '
                       'data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 3 } }')
    first, second = layer(), layer()
    assert first[0].shape == (2, 3) and not torch.equal(first[0], second[0])
    assert torch.equal(first[1], torch.full((4,), 3.0)) and torch.equal(second[1], first[1])


def test_dummy_data_legacy_dims_and_default_zero_filler():
    layer = make_layer('name: "d" type: "DummyData" top: "a" top: "b" dummy_data_param { '
                       'num: 2 channels: 3 channels: 1 height: 4 width: 5 }')
    a, b = layer()
    assert a.shape == (2, 3, 4, 5) and b.shape == (2, 1, 4, 5) and not a.any() and not b.any()


def test_a_parameter_top_is_trained_by_the_loss_below_it():
    net = CaffeNet(parse_net(
        'layer { name: "p" type: "Parameter" top: "w" parameter_param { shape { dim: 3 } } }\n'
        'layer { name: "t" type: "Input" top: "target" input_param { shape { dim: 3 } } }\n'
        'layer { name: "loss" type: "EuclideanLoss" bottom: "w" bottom: "target" top: "loss" }'), "train")
    target = torch.tensor([1.0, -2.0, 4.0])
    net.loss(net.forward({"target": target})).backward()
    (param,) = net.learnable_params()
    assert torch.equal(param.tensor.grad, -target / 3)   # d/dw Σ(w − t)²/(2N) at w = 0, N = 3
