"""Include/exclude rules and the composed NetState (caffe-spec §2.1 step 1, §2.2; FilterNetTest in
test_net.cpp, TestInitTrainTestNets in test_solver.cpp)."""
import pytest

from digitslite.caffe import caffe_pb2
from digitslite.caffe.netfilter import compose_state
from digitslite.caffe.prototxt import PrototxtError, filter_net, parse_net, parse_net_located, read_net
from digitslite.errors import UserError


def _kept(rules: str, phase="test", level=0, stages=()) -> bool:
    net = parse_net('layer { name: "always" type: "Input" top: "x" }\n'
                    f'layer {{ name: "ruled" type: "ReLU" bottom: "x" top: "x" {rules} }}\n')
    names = [layer.name for layer in filter_net(net, phase, level, stages).layer]
    assert names[0] == "always"
    return names == ["always", "ruled"]


@pytest.mark.parametrize(("rules", "state", "kept"), [
    ("", {"phase": "train"}, True),
    ("", {"phase": "test", "level": 7, "stages": ["x"]}, True),
    ('include { stage: "mystage" }', {}, False),
    ('include { stage: "mystage" }', {"stages": ["mystage"]}, True),
    ('include { stage: "mystage" stage: "myotherstage" }', {"stages": ["mystage"]}, False),
    ('include { stage: "mystage" stage: "myotherstage" }', {"stages": ["myotherstage", "mystage"]}, True),
    ('include { stage: "mystage" } include { stage: "myotherstage" }', {"stages": ["myotherstage"]}, True),
    ('include { not_stage: "mystage" }', {}, True),
    ('include { not_stage: "mystage" }', {"stages": ["mystage"]}, False),
    ('include { stage: "a" not_stage: "b" }', {"stages": ["a", "b"]}, False),
    ("include { min_level: 3 }", {"level": 2}, False),
    ("include { min_level: 3 }", {"level": 3}, True),
    ("include { max_level: -3 }", {"level": -2}, False),
    ("include { max_level: -3 }", {"level": -3}, True),
    ("include { min_level: 2 phase: TRAIN }", {"phase": "train", "level": 4}, True),
    ("include { min_level: 2 phase: TEST }", {"phase": "train", "level": 4}, False),
    ("include { min_level: 2 phase: TEST }", {"phase": "test", "level": 4}, True),
    ("include { min_level: 2 phase: TRAIN } include { phase: TEST }", {"phase": "test", "level": 0}, True),
    ("exclude { min_level: 2 phase: TRAIN }", {"phase": "train", "level": 4}, False),
    ("exclude { min_level: 2 phase: TRAIN }", {"phase": "train", "level": 1}, True),
    ("exclude { min_level: 2 phase: TRAIN }", {"phase": "test", "level": 4}, True),
    ('exclude { phase: TRAIN } exclude { stage: "deploy" }', {"phase": "test", "stages": ["deploy"]}, False),
])
def test_filter_rules(rules, state, kept):
    assert _kept(rules, **state) is kept


@pytest.mark.parametrize(("phase", "stages", "kept"), [
    ("train", [], True), ("test", ["with-softmax"], True), ("test", [], False),
])
def test_loss_layer_of_the_solver_test_is_in_train_and_in_the_softmax_test_net(phase, stages, kept):
    rules = 'include { phase: TRAIN } include { phase: TEST stage: "with-softmax" }'
    assert _kept(rules, phase, stages=stages) is kept


def test_lenet_train_test_keeps_the_data_layer_of_each_phase(peer):
    net = read_net(peer("caffe__mnist__lenet_train_test.prototxt"))
    train = filter_net(net, "train")
    test = filter_net(net, caffe_pb2.TEST)
    assert [layer.name for layer in train.layer] == \
        ["mnist", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "loss"]
    assert [layer.name for layer in test.layer] == \
        ["mnist", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "accuracy", "loss"]
    assert train.layer[0].data_param.source == "examples/mnist/mnist_train_lmdb"
    assert test.layer[0].data_param.source == "examples/mnist/mnist_test_lmdb"
    assert (train.state.phase, test.state.phase) == (caffe_pb2.TRAIN, caffe_pb2.TEST)
    assert len(net.layer) == 11       # the input is left as it was


def test_digits_all_in_one_net_by_stage(peer):
    net = read_net(peer("digits__standard-networks__caffe__lenet.prototxt"))
    body = ["scale", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2"]
    assert [layer.name for layer in filter_net(net, "train", stages=["train"]).layer] == \
        ["train-data", *body, "loss"]
    assert [layer.name for layer in filter_net(net, "test", stages=["val"]).layer] == \
        ["val-data", *body, "accuracy", "loss"]
    assert [layer.name for layer in filter_net(net, "test", stages=["deploy"]).layer] == [*body, "softmax"]


def test_state_composes_like_the_solver_does():
    net = parse_net('state { phase: TRAIN level: 2 stage: "a" }\nlayer { name: "x" type: "Input" top: "x" }')
    state = compose_state(net, "test", stages=["b"])
    assert (state.phase, state.level, list(state.stage)) == (caffe_pb2.TRAIN, 2, ["a", "b"])
    solver_state = caffe_pb2.NetState(level=0, stage=["c"])
    merged = compose_state(net, "test", state=solver_state)
    assert (merged.phase, merged.level, list(merged.stage)) == (caffe_pb2.TRAIN, 0, ["a", "c"])
    assert compose_state(net, "test", level=5).level == 5


def test_filtered_net_records_its_state_and_default_phase_is_test():
    net = parse_net('layer { name: "x" type: "Input" top: "x" }')
    filtered = filter_net(net, level=3, stages=["s"])
    state = filtered.state
    assert (state.phase, state.level, list(state.stage)) == (caffe_pb2.TEST, 3, ["s"])


def test_phase_names_and_values():
    net = parse_net('layer { name: "x" type: "Input" top: "x" }')
    assert filter_net(net, "TRAIN").state.phase == caffe_pb2.TRAIN
    assert filter_net(net, caffe_pb2.TRAIN).state.phase == caffe_pb2.TRAIN
    with pytest.raises(UserError, match="unknown phase 'validate'; use 'train' or 'test'"):
        filter_net(net, "validate")


def test_include_and_exclude_on_one_layer_is_refused_at_its_place():
    text = ('layer { name: "x" type: "Input" top: "x" }\n'
            'layer {\n  name: "both"\n  type: "ReLU"\n  include { phase: TRAIN }\n'
            '  exclude { stage: "s" }\n}\n')
    net, source_map = parse_net_located(text, "rules.prototxt")
    expected = r"^rules\.prototxt:5:3: layer 'both' has both include and exclude rules"
    with pytest.raises(PrototxtError, match=expected):
        filter_net(net, "train", source_map=source_map)
