"""Blob wiring: Caffe's automatic Split insertion with its exact names (caffe-spec §2.3,
test_split_layer.cpp) and the construction-time checks of Net::Init (§2.1 step 4)."""
import pytest

from digitslite.caffe import caffe_pb2
from digitslite.caffe.prototxt import (
    PrototxtError,
    check_topology,
    filter_net,
    insert_splits,
    parse_net,
    parse_net_located,
    read_net,
)

DATA = 'layer { name: "data" type: "Input" top: "data" top: "label" }\n'


def _wiring(net: caffe_pb2.NetParameter) -> list[tuple[str, list[str], list[str]]]:
    return [(layer.name, list(layer.bottom), list(layer.top)) for layer in net.layer]


def test_a_blob_used_once_or_through_in_place_chains_gets_no_split():
    net = parse_net(DATA + 'layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" }\n'
                           'layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }\n'
                           'layer { name: "drop1" type: "Dropout" bottom: "ip1" top: "ip1" }\n'
                           'layer { name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "label" }\n')
    assert insert_splits(net) == net


def test_a_blob_used_twice_is_split_right_after_its_producer():
    net = parse_net(DATA + 'layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" }\n'
                           'layer { name: "ip2" type: "InnerProduct" bottom: "data" top: "ip2" }\n'
                           'layer { name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "ip2" }\n')
    split = insert_splits(net)
    assert _wiring(split) == [
        ("data", [], ["data", "label"]),
        ("data_data_0_split", ["data"], ["data_data_0_split_0", "data_data_0_split_1"]),
        ("ip1", ["data_data_0_split_0"], ["ip1"]),
        ("ip2", ["data_data_0_split_1"], ["ip2"]),
        ("loss", ["ip1", "ip2"], []),
    ]
    assert split.layer[1].type == "Split" and len(split.layer[1].loss_weight) == 0


def test_the_second_top_of_a_layer_is_split_under_its_own_index():
    net = parse_net(DATA + 'layer { name: "a" type: "Power" bottom: "label" top: "a" }\n'
                           'layer { name: "b" type: "Power" bottom: "label" top: "b" }\n')
    assert _wiring(insert_splits(net))[1] == \
        ("label_data_1_split", ["label"], ["label_data_1_split_0", "label_data_1_split_1"])


def test_an_in_place_producer_names_the_split():
    net = parse_net(DATA + 'layer { name: "innerprod1" type: "InnerProduct" bottom: "data" '
                           'top: "innerprod1" }\n'
                           'layer { name: "relu1" type: "ReLU" bottom: "innerprod1" top: "innerprod1" }\n'
                           'layer { name: "innerprod2" type: "Power" bottom: "innerprod1" top: "i2" }\n'
                           'layer { name: "innerprod3" type: "Power" bottom: "innerprod1" top: "i3" }\n')
    assert _wiring(insert_splits(net))[2:] == [
        ("relu1", ["innerprod1"], ["innerprod1"]),
        ("innerprod1_relu1_0_split", ["innerprod1"],
         ["innerprod1_relu1_0_split_0", "innerprod1_relu1_0_split_1"]),
        ("innerprod2", ["innerprod1_relu1_0_split_0"], ["i2"]),
        ("innerprod3", ["innerprod1_relu1_0_split_1"], ["i3"]),
    ]


def test_a_loss_weighted_top_that_is_also_consumed_puts_the_loss_on_split_0():
    net = parse_net(DATA + 'layer { name: "innerproduct1" type: "InnerProduct" bottom: "data" '
                           'top: "innerproduct1" loss_weight: 2.5 }\n'
                           'layer { name: "loss" type: "EuclideanLoss" bottom: "innerproduct1" '
                           'bottom: "label" }\n')
    split = insert_splits(net)
    producer, splitter, loss = split.layer[1:]
    assert len(producer.loss_weight) == 0
    assert (splitter.name, list(splitter.top), list(splitter.loss_weight)) == (
        "innerproduct1_innerproduct1_0_split",
        ["innerproduct1_innerproduct1_0_split_0", "innerproduct1_innerproduct1_0_split_1"], [2.5, 0.0])
    assert list(loss.bottom) == ["innerproduct1_innerproduct1_0_split_1", "label"]


def test_a_zero_loss_weight_is_not_a_use():
    net = parse_net(DATA + 'layer { name: "ip" type: "Power" bottom: "data" top: "ip" loss_weight: 0 }\n'
                           'layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "label" }\n')
    assert insert_splits(net) == net


def test_split_insertion_leaves_its_input_alone():
    net = parse_net(DATA + 'layer { name: "a" type: "Power" bottom: "data" top: "a" }\n'
                           'layer { name: "b" type: "Power" bottom: "data" top: "b" }\n')
    before = caffe_pb2.NetParameter()
    before.CopyFrom(net)
    insert_splits(net)
    assert net == before


BAD_BOTTOM = """\
name: "bad"
layer {
  name: "data"
  type: "Input"
  top: "data"
}
layer {
  name: "conv1"
  type: "Convolution"
  bottom: "dta"
  top: "conv1"
}
"""


def test_unknown_bottom_is_located_with_a_suggestion():
    net, source_map = parse_net_located(BAD_BOTTOM, "bad.prototxt")
    expected = ("bad.prototxt:10:3: Unknown bottom blob 'dta' in layer 'conv1': no earlier layer produces it "
                "(near 'dta'); did you mean 'data'?")
    for check in (check_topology, insert_splits):
        with pytest.raises(PrototxtError) as caught:
            check(net, source_map)
        assert str(caught.value) == expected


def test_a_bottom_produced_only_later_is_unknown_and_named_by_net_without_a_map():
    net = parse_net('name: "later"\nlayer { name: "r" type: "ReLU" bottom: "x" top: "y" }\n'
                    'layer { name: "x" type: "Input" top: "x" }\n')
    with pytest.raises(PrototxtError, match=r"^net 'later': Unknown bottom blob 'x' in layer 'r'"):
        check_topology(net)


def test_a_top_written_again_by_a_layer_that_is_not_in_place_is_refused():
    text = DATA + 'layer {\n  name: "ip"\n  type: "InnerProduct"\n  bottom: "data"\n  top: "label"\n}\n'
    net, source_map = parse_net_located(text, "dup.prototxt")
    with pytest.raises(PrototxtError) as caught:
        check_topology(net, source_map)
    assert str(caught.value).startswith(
        "dup.prototxt:6:3: Top blob 'label' produced by multiple sources: layer 'ip' writes it and 'data' "
        "already does (near 'label'); give this top a new name")


def test_in_place_means_the_same_name_at_the_same_index():
    scale = 'layer { name: "s" type: "Scale" bottom: "data" bottom: "label" '
    check_topology(parse_net(DATA + scale + 'top: "data" }'))
    crossed = parse_net(DATA + scale + 'top: "label" }')
    with pytest.raises(PrototxtError, match="Top blob 'label' produced by multiple sources"):
        check_topology(crossed)


def test_propagate_down_needs_one_entry_per_bottom():
    net = parse_net(DATA + 'layer { name: "l" type: "EuclideanLoss" bottom: "data" bottom: "label" '
                           'propagate_down: true }')
    with pytest.raises(PrototxtError, match=r"layer 'l' has 1 propagate_down entries for 2 bottom\(s\)"):
        check_topology(net)


def test_include_and_exclude_together_fail_the_topology_check():
    net = parse_net(DATA + 'layer { name: "l" type: "ReLU" include { phase: TEST } '
                           'exclude { phase: TRAIN } }')
    with pytest.raises(PrototxtError, match="layer 'l' has both include and exclude rules"):
        check_topology(net)


@pytest.mark.parametrize(("name", "stages"), [
    ("caffe__mnist__lenet_train_test.prototxt", []),
    ("caffe__bvlc_alexnet__train_val.prototxt", []),
    ("digits__semantic-segmentation__fcn_alexnet.prototxt", []),
    ("digits__standard-networks__caffe__alexnet.prototxt", ["train"]),
    ("fcn__voc-fcn8s__train.prototxt", []),
    ("fcn__voc-fcn8s__deploy.prototxt", []),
    ("mnistdeploy__mnist_deploy.prototxt", []),
])
def test_real_nets_pass_the_checks_in_both_phases(peer, name, stages):
    net = read_net(peer(name))
    for phase in ("train", "test"):
        filtered = filter_net(net, phase, stages=stages)
        check_topology(filtered)
        check_topology(insert_splits(filtered))


def test_lenet_train_test_needs_a_split_for_the_label_only_in_test(peer):
    net = read_net(peer("caffe__mnist__lenet_train_test.prototxt"))
    train_names = [layer.name for layer in insert_splits(filter_net(net, "train")).layer]
    test = insert_splits(filter_net(net, "test"))
    assert "label_mnist_1_split" not in train_names
    assert "label_mnist_1_split" in [layer.name for layer in test.layer]
    assert "ip2_ip2_0_split" in [layer.name for layer in test.layer]
