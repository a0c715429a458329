"""Inference replayed from CUDA graphs gives what the eager forward gives, for each input it is fed."""
import pytest
import torch

from digitslite.caffe.prototxt import parse_net
from digitslite.engine.cuda_graphs import GraphedForward
from digitslite.engine.net import CaffeNet

DEPLOY = """
name: "small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 40 dim: 40 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 }
                            bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "score" type: "Convolution" bottom: "pool1" top: "score"
        convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "up" type: "Deconvolution" bottom: "score" top: "up"
        convolution_param { num_output: 3 group: 3 kernel_size: 4 stride: 2 bias_term: false
                            weight_filler { type: "bilinear" } } }
"""


def small_net(device: str) -> CaffeNet:
    return CaffeNet(parse_net(DEPLOY), "test", seed=5).to(device).eval()


def test_on_the_cpu_it_is_the_eager_forward():
    net = small_net("cpu")
    data = torch.rand(1, 3, 40, 40)
    with torch.inference_mode():
        graphed = GraphedForward(net, keep=("pool1",))({"data": data})
        eager = net.forward({"data": data}, keep=("pool1",))
    assert graphed.keys() == eager.keys() == {"up", "pool1"}
    for name in eager:
        assert torch.equal(graphed[name], eager[name])


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@needs_cuda
def test_each_replay_reads_its_own_input_and_each_shape_gets_its_graph():
    net = small_net("cuda")
    forward = GraphedForward(net)
    with torch.inference_mode():
        for shape in ((1, 3, 40, 40), (1, 3, 40, 40), (2, 3, 24, 32), (1, 3, 40, 40)):
            data = torch.rand(shape, device="cuda")
            out = forward({"data": data})["up"]
            torch.testing.assert_close(out, net.forward({"data": data})["up"], rtol=1e-6, atol=1e-6)
    assert len(forward._captured) == 2 and all(forward._captured.values())


def read_back(_module, _inputs, outputs) -> None:
    """A value read back to the host, which a graph being captured cannot do."""
    outputs[0].sum().item()


@needs_cuda
def test_a_forward_that_reads_a_value_back_runs_eagerly():
    net = small_net("cuda")
    net.layers[0].register_forward_hook(read_back)
    forward = GraphedForward(net)
    data = torch.rand(1, 3, 40, 40, device="cuda")
    with torch.inference_mode():
        out = forward({"data": data})["up"]
        torch.testing.assert_close(out, net.forward({"data": data})["up"], rtol=1e-6, atol=1e-6)
    assert list(forward._captured.values()) == [None]


@needs_cuda
def test_with_gradients_or_autocast_it_does_not_capture():
    net = small_net("cuda")
    forward = GraphedForward(net)
    data = torch.rand(1, 3, 40, 40, device="cuda")
    forward({"data": data})
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        forward({"data": data})
    assert not forward._captured
