"""Every convolution execution the engine may choose gives real Caffe's numbers (../shared/caffe_golden:
forward 1e-4, gradients 1e-3 of the largest expected value), and the CPU rule picks what it says."""
import numpy as np
import pytest
import torch

from digitslite.caffe.prototxt import read_net
from digitslite.engine import execution
from digitslite.engine.net import CaffeNet
from tests.golden.golden import FORWARD, GRADIENT, golden_dir, relative_error
from tests.golden.test_models import SEEDS, _recipe_weights

CASES_2D = ["conv_basic", "conv_group_dilation", "conv_hw_nobias", "conv_depthwise", "conv_repeated_pad_dil",
            "deconv_basic", "deconv_group_depthwise", "deconv_group2", "deconv_hw_dilation"]


def error(got: torch.Tensor, expected) -> float:
    return relative_error(got.detach().numpy(), np.asarray(expected))


@pytest.mark.parametrize("case", CASES_2D)
@pytest.mark.parametrize("name", execution.EXECUTIONS)
def test_each_execution_matches_caffe(case: str, name: str, monkeypatch) -> None:
    folder = golden_dir() / "layers" / case
    arrays = np.load(folder / "case.npz")
    net = CaffeNet(read_net(folder / "net.prototxt"), "test")
    net.load_weights(folder / "weights.caffemodel")
    layer = net.layers[0]
    bottom = torch.from_numpy(arrays["in:x"]).requires_grad_(True)
    call = execution.ConvCall(type(layer).__name__ == "Deconvolution", layer.weight, layer.bias, layer.groups,
                              **layer._options())
    if name not in execution.candidates(call, bottom):
        pytest.skip(f"{name} does not apply to {case}")
    monkeypatch.setenv(execution.FORCE_VARIABLE, name)
    assert execution.choose(call, bottom) == name
    top = net({"x": bottom})["y"]
    top.backward(torch.from_numpy(arrays["topdiff:y"]))
    assert error(top, arrays["out:y"]) <= FORWARD
    assert error(bottom.grad, arrays["bottomdiff:x"]) <= GRADIENT
    for index, blob in enumerate(layer.blobs()):
        assert error(blob.grad, arrays[f"paramdiff:{layer.param.name}:{index}"]) <= GRADIENT


@pytest.mark.slow   # 37M recipe weights, then two forward+backward passes
def test_default_execution_of_fcn_alexnet_matches_caffe_and_plain(monkeypatch) -> None:
    """The default (rule-chosen: gemm fc6/fc7/score, channels_last elsewhere) against Caffe's blobs,
    and its gradients against plain NCHW oneDNN within the gradient tolerance, in 2-norm: rounding
    can put a ReLU input near 0 on the other side, which reroutes one unit's whole gradient."""
    folder = golden_dir() / "models" / "fcn_alexnet"
    arrays = np.load(folder / "blobs.npz")
    net = CaffeNet(read_net(folder / "net.prototxt"), "test")
    net.load_weights(_recipe_weights(net, SEEDS["fcn_alexnet"], arrays))
    data = torch.from_numpy(arrays["blob:data"])
    monkeypatch.delenv(execution.FORCE_VARIABLE, raising=False)
    names = ("fc6", "fc7", "score_fr_21classes", "upscore_21classes", "score")
    with torch.no_grad():
        chosen = net({"data": data.clone()}, keep=names)
    for name in names:
        assert error(chosen[name], arrays[f"blob:{name}"]) <= FORWARD, name

    def gradients() -> list[torch.Tensor]:
        for param in net.parameters():
            param.grad = None
        leaf = data.clone().requires_grad_(True)
        score = net({"data": leaf})["score"]
        (score * torch.linspace(-1, 1, score.numel()).view_as(score)).sum().backward()
        return [leaf.grad, *(param.grad for param in net.parameters() if param.grad is not None)]

    default = gradients()
    monkeypatch.setenv(execution.FORCE_VARIABLE, execution.PLAIN)
    plain = gradients()
    for ours, reference in zip(default, plain, strict=True):
        assert float(torch.linalg.norm(ours - reference) / torch.linalg.norm(reference)) <= GRADIENT


def _call(weight_shape, groups=1, transposed=False, **geometry) -> execution.ConvCall:
    weight = torch.empty(1).expand(*weight_shape)      # shapes only: no memory for a 4096x4096 filter
    options = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1)} | geometry
    return execution.ConvCall(transposed, weight, None, groups, **options)


@pytest.mark.parametrize(("weight", "bottom", "groups", "transposed", "geometry", "expected"), [
    ((96, 3, 11, 11), (1, 3, 500, 500), 1, False, {"stride": (4, 4), "padding": (100, 100)}, "channels_last"),
    ((256, 48, 5, 5), (1, 96, 86, 86), 2, False, {"padding": (2, 2)}, "channels_last"),
    ((4096, 256, 6, 6), (1, 256, 21, 21), 1, False, {}, "gemm"),          # 256 pixels, 9216 taps
    ((4096, 4096, 1, 1), (1, 4096, 16, 16), 1, False, {}, "gemm"),
    ((21, 1, 63, 63), (1, 21, 16, 16), 21, True, {"stride": (32, 32)}, "channels_last"),
    ((20, 1, 5, 5), (64, 1, 28, 28), 1, False, {}, "channels_last"),      # LeNet conv1, 36864 pixels
])
def test_cpu_rule(weight, bottom, groups, transposed, geometry, expected, monkeypatch) -> None:
    monkeypatch.delenv(execution.FORCE_VARIABLE, raising=False)
    assert execution.choose(_call(weight, groups, transposed, **geometry), torch.empty(bottom)) == expected


def test_cpu_rule_trains_a_filter_on_few_channels_as_image(monkeypatch) -> None:
    """Training FCN-AlexNet's conv1 (3 channels) runs image; its inference, its training under
    autocast, and training a filter on 48 channels run channels_last."""
    monkeypatch.delenv(execution.FORCE_VARIABLE, raising=False)
    image = execution.ConvCall(False, torch.zeros(96, 3, 11, 11, requires_grad=True), None, 1, (4, 4),
                               (100, 100), (1, 1))
    wide = execution.ConvCall(False, torch.zeros(256, 48, 5, 5, requires_grad=True), None, 1, (1, 1),
                              (2, 2), (1, 1))
    assert execution.choose(image, torch.empty(1, 3, 500, 500)) == execution.IMAGE
    assert execution.choose(wide, torch.empty(1, 48, 86, 86)) == execution.CHANNELS_LAST
    with torch.no_grad():
        assert execution.choose(image, torch.empty(1, 3, 500, 500)) == execution.CHANNELS_LAST
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert execution.choose(image, torch.empty(1, 3, 500, 500)) == execution.CHANNELS_LAST


def test_measurement_times_candidates_without_touching_the_layer() -> None:
    """The CUDA path's measurement, run on the CPU: it picks a candidate and leaves no gradient behind."""
    weight = torch.randn(8, 4, 3, 3, requires_grad=True)
    bias = torch.randn(8, requires_grad=True)
    call = execution.ConvCall(False, weight, bias, 1, (1, 1), (1, 1), (1, 1))
    batch = torch.randn(2, 4, 12, 12, requires_grad=True)
    options = execution.candidates(call, batch)
    assert execution._fastest(call, batch, options) in options
    assert weight.grad is None and bias.grad is None and batch.grad is None


def test_keep_layout_hands_the_gradient_back_in_the_tensors_layout() -> None:
    """A row-major gradient reaches a channels_last tensor's producer as channels_last, and a
    channels_last one with oneDNN's odd batch stride gets the canonical strides without a copy."""
    source = torch.randn(1, 8, 5, 5).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    seen = []
    tensor = source * 1.0
    tensor.register_hook(seen.append)
    execution.keep_layout(tensor).backward(torch.ones(1, 8, 5, 5))
    assert seen[0].stride() == (200, 1, 40, 8)
    odd = torch.ones(1, 8, 5, 5).contiguous(memory_format=torch.channels_last).as_strided((1, 8, 5, 5),
                                                                                           (8, 1, 40, 8))
    restrided = execution.in_layout(odd, channels_last=True)
    assert restrided.stride() == (200, 1, 40, 8) and restrided.data_ptr() == odd.data_ptr()
