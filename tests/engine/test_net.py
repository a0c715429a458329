"""CaffeNet reproduces Net::Init semantics (caffe-spec §2.1–2.5): naming, sharing, loss weights, backward."""
import numpy as np
import pytest
import torch

from digitslite.caffe import caffe_pb2
from digitslite.caffe.caffemodel import write_caffemodel
from digitslite.caffe.prototxt import parse_net
from digitslite.engine.net import CaffeNet
from digitslite.engine.solver import Solver
from digitslite.errors import UserError

INPUTS = """
layer { name: "in" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 4 } } }
"""


def ip(name: str, bottom: str, top: str, outputs: int = 4, extra: str = "") -> str:
    return (f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{top}" {extra} '
            f'inner_product_param {{ num_output: {outputs} weight_filler {{ type: "gaussian" }} '
            f'bias_filler {{ type: "gaussian" }} }} }}\n')


def euclidean(name: str, bottom: str, extra: str = "") -> str:
    return (f'layer {{ name: "{name}" type: "EuclideanLoss" bottom: "{bottom}" bottom: "label" '
            f'top: "{name}" {extra} }}\n')


def build(body: str, phase: str = "train", seed: int = 3, **kwargs) -> CaffeNet:
    return CaffeNet(parse_net('name: "t"\n' + INPUTS + body), phase, seed=seed, **kwargs)


def batch(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"data": torch.randn(2, 3, generator=generator), "label": torch.randn(2, 4, generator=generator)}


def weight(net: CaffeNet, layer: str, index: int = 0) -> np.ndarray:
    return net.weights()[layer][index]


def euclidean_gradient(x: np.ndarray, w: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """d/dW of ‖xWᵀ + b − t‖²/(2N), by hand."""
    return (x @ w.T + b - t).T @ x / len(x)


def test_in_place_layers_rebind_the_blob_name_to_the_new_value():
    net = build(ip("ip", "data", "ip") + 'layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }\n'
                + euclidean("loss", "ip"))
    inputs = batch()
    blobs = net.forward(inputs, keep=["ip"])
    w, b = weight(net, "ip", 0), weight(net, "ip", 1)
    expected = np.maximum(inputs["data"].numpy() @ w.T + b, 0)
    np.testing.assert_allclose(blobs["ip"].detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    assert (expected == 0).any(), "the check needs some negative pre-activations"


def test_outputs_are_unconsumed_blobs_sorted_by_name():
    body = ip("zeta", "data", "zeta") + ip("alpha", "data", "alpha") + ip("mid", "data", "mid") \
        + ip("consumer", "mid", "beta")
    net = build(body)
    # label is produced by the Input layer and never consumed: Caffe makes it an output too.
    assert net.output_names == ["alpha", "beta", "label", "zeta"]
    assert list(net(batch())) == ["alpha", "beta", "label", "zeta"]


def test_split_layers_are_inserted_with_caffes_names_and_alias_their_bottom():
    net = build(ip("ip", "data", "ip") + euclidean("loss_a", "ip") + euclidean("loss_b", "ip"))
    blobs = net.forward(batch(), keep=["ip_ip_0_split_0", "ip"])
    assert torch.equal(blobs["ip_ip_0_split_0"], blobs["ip"])
    assert "ip_ip_0_split" in [layer.name for layer in net.net_param.layer]


def test_shared_weights_have_one_owner_and_the_summed_gradient():
    shared = 'param { name: "w" } param { name: "b" }'
    body = (ip("ip1", "data", "out1", extra=shared) + ip("ip2", "data2", "out2", extra=shared)
            + euclidean("loss1", "out1") + euclidean("loss2", "out2"))
    text = INPUTS.replace('top: "label"', 'top: "label" top: "data2"').replace(
        "shape { dim: 2 dim: 4 } }", "shape { dim: 2 dim: 4 } shape { dim: 2 dim: 3 } }")
    net = CaffeNet(parse_net('name: "t"\n' + text + body), "train", seed=1)
    assert [(p.layer, p.index, p.name) for p in net.learnable_params()] == [("ip1", 0, "w"), ("ip1", 1, "b")]
    inputs = {**batch(), "data2": torch.randn(2, 3)}
    w, b = weight(net, "ip1", 0), weight(net, "ip1", 1)
    np.testing.assert_array_equal(weight(net, "ip2", 0), w)
    net.loss(net(inputs)).backward()
    label = inputs["label"].numpy()
    expected = (euclidean_gradient(inputs["data"].numpy(), w, b, label)
                + euclidean_gradient(inputs["data2"].numpy(), w, b, label))
    owner = net.learnable_params()[0].tensor
    np.testing.assert_allclose(owner.grad.numpy(), expected, rtol=1e-5, atol=1e-6)
    # An SGD step with rate 1 gives data − (diff1 + diff2) in both layers (test_net TestSharedWeightsUpdate).
    Solver(caffe_pb2.SolverParameter(type="SGD", lr_policy="fixed", base_lr=1.0), net.learnable_params()
           ).apply_update()
    np.testing.assert_allclose(weight(net, "ip2", 0), w - expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(weight(net, "ip1", 0), weight(net, "ip2", 0))


def test_strict_sharing_refuses_a_different_shape_and_permissive_reshapes_the_same_count():
    # ip1's weight is (4, 3) on data, ip2's is (6, 2) on a 2-wide input: same count, other shape.
    inputs = INPUTS.replace('top: "label"', 'top: "label" top: "narrow"').replace(
        "shape { dim: 2 dim: 4 } }", "shape { dim: 2 dim: 4 } shape { dim: 2 dim: 2 } }")

    def net_text(mode: str) -> str:
        return ('name: "t"\n' + inputs + ip("ip1", "data", "out1", 4, 'param { name: "w" }')
                + ip("ip2", "narrow", "out2", 6, f'param {{ name: "w" {mode} }}'))

    with pytest.raises(UserError, match="cannot share param 'w'"):
        CaffeNet(parse_net(net_text("")), "train")
    net = CaffeNet(parse_net(net_text("share_mode: PERMISSIVE")), "train", seed=0)
    owner = weight(net, "ip1", 0)
    np.testing.assert_array_equal(weight(net, "ip2", 0), owner.reshape(6, 2))
    narrow = torch.randn(2, 2)
    out = net.forward({**batch(), "narrow": narrow}, keep=["out2"])["out2"]
    expected = narrow.numpy() @ owner.reshape(6, 2).T + weight(net, "ip2", 1)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_lr_mult_of_a_sharer_is_adopted_when_the_owner_left_it_default_and_must_agree_otherwise():
    body = ip("ip1", "data", "o1", extra='param { name: "w" }') + \
        ip("ip2", "data", "o2", extra='param { name: "w" lr_mult: 3 decay_mult: 0 }')
    owner = build(body).learnable_params()[0]
    assert (owner.lr_mult, owner.decay_mult) == (3, 0)
    conflict = body.replace('param { name: "w" }', 'param { name: "w" lr_mult: 1 }')
    with pytest.raises(UserError, match="shared param 'w' has lr_mult 3"):
        build(conflict)


def test_lr_mult_zero_freezes_the_parameter_but_gradient_still_flows_below_it():
    frozen_specs = "param { lr_mult: 0 } param { lr_mult: 0 }"
    net = build(ip("ip1", "data", "h") + ip("ip2", "h", "out", extra=frozen_specs) + euclidean("loss", "out"))
    frozen = [p for p in net.learnable_params() if p.layer == "ip2"]
    assert all(not p.tensor.requires_grad and p.lr_mult == 0 for p in frozen)
    net.loss(net(batch())).backward()
    assert all(p.tensor.grad is None for p in frozen)
    assert net.learnable_params()[0].tensor.grad.abs().sum() > 0


def gradients(net: CaffeNet, inputs) -> list[torch.Tensor]:
    net.zero_grad()
    loss = net.loss(net(inputs))
    loss.backward()
    return [loss.detach(), *(p.tensor.grad.clone() for p in net.learnable_params())]


@pytest.mark.parametrize("scale", [2.0, -2.5, 3.7])
def test_loss_weight_scales_the_loss_and_every_gradient(scale):
    inputs = batch()
    plain = gradients(build(ip("ip", "data", "ip") + euclidean("loss", "ip")), inputs)
    weighted_net = build(ip("ip", "data", "ip") + euclidean("loss", "ip", f"loss_weight: {scale}"))
    weighted = gradients(weighted_net, inputs)
    for a, b in zip(plain, weighted, strict=True):
        torch.testing.assert_close(b, a * scale, rtol=1e-5, atol=1e-6)


def test_loss_weight_on_a_plain_layer_adds_its_weighted_sum_and_zero_weight_removes_a_loss():
    net = build(ip("ip", "data", "ip", extra="loss_weight: 0.5") + euclidean("loss", "ip", "loss_weight: 0"))
    assert net.loss_weights == {"ip_ip_0_split_0": 0.5}
    out = net.forward(batch(), keep=["ip"])
    torch.testing.assert_close(net.loss(out), 0.5 * out["ip"].sum())


def test_a_two_top_loss_layer_without_loss_weights_is_refused_like_caffe():
    body = ('layer { name: "loss" type: "SoftmaxWithLoss" bottom: "s" bottom: "l" top: "loss" top: "prob" }')
    text = ('name: "t" layer { name: "in" type: "Input" top: "s" top: "l" input_param { '
            'shape { dim: 2 dim: 3 } shape { dim: 2 } } }\n' + body)
    with pytest.raises(UserError, match="loss_weight has 1 entries for 2 tops"):
        CaffeNet(parse_net(text), "train")
    explicit = text.replace('top: "prob"', 'top: "prob" loss_weight: 1 loss_weight: 0')
    net = CaffeNet(parse_net(explicit), "train")
    assert net.loss_weights == {"loss": 1.0}


def test_propagate_down_false_stops_the_gradient_at_that_bottom():
    net = build(ip("ip1", "data", "h") + ip("ip2", "h", "out", extra="propagate_down: false")
                + euclidean("loss", "out"))
    net.loss(net(batch())).backward()
    grads = {(p.layer, p.index): p.tensor.grad for p in net.learnable_params()}
    assert grads["ip1", 0] is None and grads["ip1", 1] is None
    assert grads["ip2", 0].abs().sum() > 0


def test_layers_that_do_not_reach_a_loss_get_no_gradient():
    net = build(ip("ip", "data", "ip") + euclidean("loss", "ip") + ip("side", "data", "side"))
    net.loss(net(batch())).backward()
    side = [p for p in net.learnable_params() if p.layer == "side"]
    assert all(p.tensor.grad is None for p in side)


def test_force_backward_gives_the_input_a_gradient():
    inputs = batch()
    build(ip("ip", "data", "ip") + euclidean("loss", "ip"))(inputs)
    assert not inputs["data"].requires_grad
    net = CaffeNet(parse_net('name: "t" force_backward: true\n' + INPUTS + ip("ip", "data", "ip")
                             + euclidean("loss", "ip")), "train", seed=3)
    net.loss(net(inputs)).backward()
    w, b = weight(net, "ip", 0), weight(net, "ip", 1)
    x, t = inputs["data"].detach().numpy(), inputs["label"].detach().numpy()
    expected = (x @ w.T + b - t) @ w / len(x)
    np.testing.assert_allclose(inputs["data"].grad.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_a_layers_own_phase_wins_over_the_nets():
    body = ip("ip", "data", "ip") + \
        'layer { name: "drop" type: "Dropout" bottom: "ip" top: "dropped" phase: TEST }\n'
    net = build(body)
    blobs = net.forward(batch(), keep=["dropped", "ip"])
    assert torch.equal(blobs["dropped"], blobs["ip"])


ALL_IN_ONE = ip("ip", "data", "ip") + euclidean("loss", "ip") + \
    ip("probe", "data", "probe", extra='include { phase: TEST }')


def test_a_test_net_shares_the_train_nets_weights_by_layer_name():
    train = build(ALL_IN_ONE, "train", seed=1)
    test = build(ALL_IN_ONE, "test", seed=2)
    probe_before = weight(test, "probe")
    test.share_weights_from(train)
    with torch.no_grad():
        train.learnable_params()[0].tensor.add_(1.0)
    np.testing.assert_array_equal(weight(test, "ip"), weight(train, "ip"))
    np.testing.assert_array_equal(weight(test, "probe"), probe_before)
    assert "probe" not in train.weights()


def test_weights_round_trip_through_a_caffemodel_by_layer_name(tmp_path):
    body = ip("ip", "data", "ip") + euclidean("loss", "ip")
    source, target = build(body, seed=1), build(body, seed=2)
    path = tmp_path / "w.caffemodel"
    write_caffemodel(path, source.net_param, source.weights())
    report = target.load_weights(path)
    assert list(report.weights) == ["ip"] and report.ignored == []
    for a, b in zip(source.weights()["ip"], target.weights()["ip"], strict=True):
        np.testing.assert_array_equal(a, b)
    renamed = build(body.replace('name: "ip"', 'name: "ip_new"'), seed=2)
    report = renamed.load_weights(source.weights())
    assert report.ignored == ["ip"] and report.missing == ["ip_new"]


def test_scalar_parameter_blobs_load_from_a_caffemodel(tmp_path):
    """PReLU channel_shared and Scale num_axes 0 own 0-d blobs; they must load, not turn into (1,)."""
    body = ('layer { name: "act" type: "PReLU" bottom: "data" top: "act" '
            'prelu_param { channel_shared: true } }\n'
            'layer { name: "sc" type: "Scale" bottom: "act" top: "sc" scale_param { num_axes: 0 } }\n')
    path = tmp_path / "w.caffemodel"
    source = build(body)
    write_caffemodel(path, source.net_param, {"act": [np.array(0.75, np.float32)],
                                               "sc": [np.array(-2.0, np.float32)]})
    target = build(body)
    target.load_weights(path)
    assert weight(target, "act").shape == () and float(weight(target, "act")) == 0.75
    x = torch.tensor([[-1.0, 2.0, -4.0], [1.0, 0.0, -2.0]])
    top = target.forward({"data": x, "label": torch.zeros(2, 4)})["sc"].detach().numpy()
    np.testing.assert_array_equal(top, -2.0 * np.where(x > 0, x, 0.75 * x))


def test_batchnorm_statistics_are_frozen_learnables_and_get_caffes_param_specs():
    body = ('layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" }\n' + ip("ip", "data", "ip")
            + euclidean("loss", "ip"))
    net = build(body)
    stats = [p for p in net.learnable_params() if p.layer == "bn"]
    assert [p.lr_mult for p in stats] == [0, 0, 0]
    bn_param = next(layer for layer in net.net_param.layer if layer.name == "bn")
    assert [spec.lr_mult for spec in bn_param.param] == [0, 0, 0]
    net = net.double()
    module = net.layers[0]
    assert stats[0].tensor is module.mean_sum and stats[0].tensor.dtype == torch.float64
    with pytest.raises(UserError, match="holds statistics"):
        build(body.replace('top: "data" }', 'top: "data" param { lr_mult: 1 } }', 1))


def test_a_missing_input_is_a_user_error_naming_it():
    net = build(ip("ip", "data", "ip") + euclidean("loss", "ip"))
    with pytest.raises(UserError, match="input 'label' is missing"):
        net({"data": torch.zeros(2, 3)})


def test_a_loss_layer_without_a_top_still_counts():
    net = build(
        ip("ip", "data", "ip") + 'layer { name: "l" type: "EuclideanLoss" bottom: "ip" bottom: "label" }')
    assert net.output_names == []
    out = net(batch())
    assert net.loss(out) > 0
