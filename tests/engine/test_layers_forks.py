"""The two fork layers digitslite runs (SSD's Permute, SegNet's Upsample), with hand-computed values,
and the named refusals of the other fork and data layers."""
import pytest
import torch

from digitslite.caffe.prototxt import parse_net
from digitslite.caffe.shapes import ShapeError, infer_shapes
from digitslite.engine.net import CaffeNet
from digitslite.errors import UserError
from tests.engine.test_layers_support import gradcheck_layer, make_layer


@pytest.mark.parametrize(("order", "expected"), [("order: 0 order: 2 order: 3 order: 1", (0, 2, 3, 1)),
                                                  ("order: 1", (1, 0, 2, 3)), ("", (0, 1, 2, 3))])
def test_permute_puts_the_listed_axes_first_and_the_rest_in_order(order, expected):
    data = torch.randn(2, 3, 4, 5)
    top = make_layer(f'name: "p" type: "Permute" permute_param {{ {order} }}', data.shape)(data)[0]
    assert torch.equal(top, data.permute(expected))


def test_permute_refuses_a_repeated_or_missing_axis():
    for order in ("order: 0 order: 0", "order: 4"):
        with pytest.raises(UserError, match="distinct axes below 4"):
            make_layer(f'name: "p" type: "Permute" permute_param {{ {order} }}', (2, 3, 4, 5))


NET = """
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }
layer { name: "pool" type: "Pooling" bottom: "x" top: "p" top: "mask"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "up" type: "Upsample" bottom: "p" bottom: "mask" top: "u" upsample_param { %s } }
"""


def test_upsample_puts_each_maximum_back_where_pooling_found_it():
    x = torch.tensor([[[[1.0, 5.0, 2.0, 0.0],
                        [3.0, 4.0, 7.0, 1.0],
                        [0.0, 0.0, 1.0, 2.0],
                        [9.0, 6.0, 3.0, 8.0]]]])
    net = CaffeNet(parse_net(NET % "scale: 2"))
    up = net.forward({"x": x}, keep=["u"])["u"]
    expected = torch.tensor([[[[0.0, 5.0, 0.0, 0.0],
                               [0.0, 0.0, 7.0, 0.0],
                               [0.0, 0.0, 0.0, 0.0],
                               [9.0, 0.0, 0.0, 8.0]]]])
    assert torch.equal(up, expected)


@pytest.mark.parametrize(("param", "size"), [("scale: 2 pad_out_h: true", (3, 4)),
                                              ("upsample_h: 5 upsample_w: 4", (5, 4)),
                                              ("scale_h: 3 scale_w: 2", (6, 4))])
def test_upsample_output_size_follows_segnet(param, size):
    shapes = infer_shapes(parse_net(NET % param))
    assert shapes[-1].tops == [(1, 1, *size)]


def test_upsample_gradient_reads_the_masked_positions():
    mask = torch.tensor([[[[1.0, 2.0], [12.0, 15.0]]]])
    layer = make_layer('name: "up" type: "Upsample" upsample_param { scale: 2 }', (1, 1, 2, 2), (1, 1, 2, 2))
    gradcheck_layer(layer, torch.randn(1, 1, 2, 2), mask, wrt=(0,))


@pytest.mark.parametrize(("layer_type", "names"), [
    ("BN", "SegNet"), ("L1Loss", "NVIDIA"), ("Axpy", "waifu2x"), ("HDF5Output", "inference results"),
    ("MemoryData", "Input layer"), ("WindowData", "image dataset")])
def test_fork_and_data_layers_are_refused_naming_the_fork_or_the_alternative(layer_type, names):
    net = parse_net('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }\n'
                    f'layer {{ name: "odd" type: "{layer_type}" bottom: "x" top: "y" }}')
    with pytest.raises(ShapeError, match=f"layer 'odd' has type '{layer_type}', which digitslite does not "
                                         f"run: .*{names}"):
        infer_shapes(net)
