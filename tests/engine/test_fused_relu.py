"""A forward that records no graph runs each channels_last convolution as oneDNN's with a cached
packed weight and folds in the plain ReLU after it; its blobs are a float64 reference's (computed
here with torch's float64 convolution) within the golden forward tolerance, like the recorded
forward's, and a ReLU another layer's read or a negative slope needs stays a layer of its own."""
import pytest
import torch
import torch.nn.functional as F
from google.protobuf import text_format

from digitslite.caffe import caffe_pb2
from digitslite.engine import execution
from digitslite.engine.net import CaffeNet
from tests.golden.golden import FORWARD, relative_error

# c1+r1: in place, folded; c2's top is read by r2 and by e: not folded; r3 has a negative slope:
# not folded; c4+r4: not in place, r4 its only reader: folded unless c4 is kept by name.
NET = """
name: "fusions"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 dim: 20 dim: 20 } } }
layer { name: "c1" type: "Convolution" bottom: "x" top: "c1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "p1" type: "Pooling" bottom: "c1" top: "p1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "c2" type: "Convolution" bottom: "p1" top: "c2"
        convolution_param { num_output: 6 kernel_size: 1 } }
layer { name: "r2" type: "ReLU" bottom: "c2" top: "r2" }
layer { name: "e" type: "Eltwise" bottom: "c2" bottom: "r2" top: "e" }
layer { name: "c3" type: "Convolution" bottom: "e" top: "c3"
        convolution_param { num_output: 4 kernel_size: 3 group: 2 } }
layer { name: "r3" type: "ReLU" bottom: "c3" top: "c3" relu_param { negative_slope: 0.1 } }
layer { name: "c4" type: "Convolution" bottom: "c3" top: "c4"
        convolution_param { num_output: 5 kernel_size: 1 } }
layer { name: "r4" type: "ReLU" bottom: "c4" top: "r4" }
"""


def _net() -> CaffeNet:
    net = CaffeNet(text_format.Parse(NET, caffe_pb2.NetParameter()), "test")
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for param in net.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    return net


def _reference(net: CaffeNet, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The net by hand in float64."""
    layers = {step.name: net.layers[step.module] for step in net.steps if step.module is not None}

    def conv(name: str, bottom: torch.Tensor, **options) -> torch.Tensor:
        layer = layers[name]
        return F.conv2d(bottom, layer.weight.detach().double(), layer.bias.detach().double(), **options)

    c1 = conv("c1", x.double(), padding=1).clamp(min=0)
    c2 = conv("c2", F.max_pool2d(c1, 2, 2))
    c3 = conv("c3", c2 + c2.clamp(min=0), groups=2)
    c3 = torch.where(c3 > 0, c3, 0.1 * c3)
    c4 = conv("c4", c3)
    return {"c1": c1, "c2": c2, "c3": c3, "c4": c4, "r4": c4.clamp(min=0)}


def test_only_a_plain_relu_on_a_top_nothing_else_reads_is_folded() -> None:
    net = _net()
    assert {net.steps[index].name: in_place for index, in_place in net._relu_after.items()} == \
        {"c1": True, "c4": False}


def test_no_graph_forward_matches_the_reference_and_the_recorded_forward() -> None:
    net = _net()
    x = torch.randn(1, 3, 20, 20, generator=torch.Generator().manual_seed(6)) * 10
    expected = _reference(net, x)
    names = ["c1", "c2", "c3"]
    recorded = net({"x": x}, keep=names)
    with torch.no_grad():
        folded = net({"x": x}, keep=names)
        kept = net({"x": x}, keep=["c4"])     # c4 asked for by name: its ReLU runs on its own
    for blobs in (recorded, folded):
        for name in ["r4", *names]:
            assert relative_error(blobs[name].detach().numpy(), expected[name].numpy()) <= FORWARD, name
    assert relative_error(kept["c4"].numpy(), expected["c4"].numpy()) <= FORWARD
    assert relative_error(kept["r4"].numpy(), expected["r4"].numpy()) <= FORWARD
    # channels_last with the canonical strides, also on the size-1 batch axis (pooling is slow otherwise)
    assert folded["c1"].stride() == (3200, 1, 160, 8) and folded["c2"].stride() == (600, 1, 60, 6)


def test_a_forward_that_records_a_graph_does_not_pack(monkeypatch) -> None:
    packed = []
    original = execution.PackedWeight.get

    def get(self, call: execution.ConvCall, batch: torch.Tensor) -> torch.Tensor:
        packed.append(call.weight.shape)
        return original(self, call, batch)

    monkeypatch.setattr(execution.PackedWeight, "get", get)
    monkeypatch.delenv(execution.FORCE_VARIABLE, raising=False)
    net = _net()
    x = torch.randn(1, 3, 20, 20)
    out = net({"x": x})["r4"]
    assert packed == [] and out.requires_grad
    with torch.no_grad():
        net({"x": x})
    assert len(packed) == 4


def test_a_weight_written_in_place_is_packed_again() -> None:
    net = _net()
    x = torch.randn(1, 3, 20, 20)
    with torch.no_grad():
        net({"x": x})
        for param in net.parameters():
            param.mul_(-1.5)
        folded = net({"x": x})["r4"]
    assert relative_error(folded.numpy(), _reference(net, x)["r4"].numpy()) <= FORWARD


@pytest.mark.parametrize("name", [execution.CHANNELS_LAST, execution.GEMM])
def test_a_pooled_batch_of_one_stays_channels_last_through_a_1x1_convolution(name: str) -> None:
    """Max pooling gives a batch of 1 an odd stride on N; the 1x1 convolution after it must still
    answer channels_last (FCN-8s' score_pool3 and score_pool4), with Caffe's numbers."""
    pooled = F.max_pool2d(torch.randn(1, 16, 12, 12).contiguous(memory_format=torch.channels_last), 2)
    weight, bias = torch.randn(7, 16, 1, 1), torch.randn(7)
    call = execution.ConvCall(False, weight, bias, 1, (1, 1), (0, 0), (1, 1))
    out = execution.run(name, call, pooled)
    expected = F.conv2d(pooled.double(), weight.double(), bias.double())
    assert execution.is_channels_last(out)
    assert relative_error(out.numpy(), expected.numpy()) <= FORWARD
