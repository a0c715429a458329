"""The standard networks in network_defs/: they render, shape-check and get the derived Crop offsets.

Expected offsets for the FCNs are the published ones (fcn-reference.md §c; the same values the
peer files write by hand). fcn_tiny's and sugnet's are derived by hand below.
"""
import pytest

from digitslite.caffe import caffe_pb2
from digitslite.caffe.deploy import bind_data_sources, deploy_net
from digitslite.caffe.prototxt import filter_net
from digitslite.caffe.shapes import blob_shapes
from digitslite.errors import UserError
from digitslite.networks import list_networks, load_network, load_solver, render_network_text


def crop_offsets(net: caffe_pb2.NetParameter) -> dict[str, list[int]]:
    return {layer.name: list(layer.crop_param.offset) for layer in net.layer if layer.type == "Crop"}


def test_every_standard_network_is_listed_with_a_solver():
    names = {network.name for network in list_networks()}
    assert names == {"fcn_tiny", "fcn_alexnet", "fcn8s", "fcn16s", "fcn32s", "sugnet", "colorize_classes",
                     "colorize_classes_full", "colorize_hypercolumns", "colorize_hypercolumns_tiny"}
    for network in list_networks():
        assert network.solver_file.is_file()
        assert load_solver(network.name).type in {"SGD", "Adam"}


@pytest.mark.parametrize(("name", "expected"), [
    ("fcn_alexnet", {"score": [18]}),
    ("fcn32s", {"score": [19]}),
    ("fcn16s", {"score_pool4c": [5], "score": [27]}),
    ("fcn8s", {"score_pool4c": [5], "score_pool3c": [9], "score": [31]}),
    # fcn_tiny: 3x3 pad-1 convolutions map 1:1; each 2x2/2 pool maps x -> x/2 - 1/4.
    # pool2 = x/4 - 3/8 and pool3 = pool2/2 - 1/4 (dilated conv4 and 1x1 score_fr map 1:1).
    # upscore2 (k4 s2): 2*score_fr + 3/2 = pool2 + 1 -> upscore2c offset 1.
    # upscore4 (k8 s4): 4*fuse_pool2 + 7/2 = x - 3/2 + 7/2 = x + 2 -> score offset 2.
    ("fcn_tiny", {"upscore2c": [1], "score": [2]}),
    # sugnet: VGG16 with pad 100 gives pool5 = x/32 + 2.609375 (fcn-reference FCN-8s table).
    # Five deconvolutions k5 s2 p2 each map y -> 2y + (4/2 - 2) = 2y, so decode5 = 32*pool5
    # = x + 83.5; the 2x2 score_fr maps y -> y - 1/2, so score_fr = x + 83 -> offset 83.
    ("sugnet", {"score": [83]}),
])
def test_crop_offsets_are_derived_when_the_network_loads(name, expected):
    assert crop_offsets(load_network(name, num_classes=21)) == expected


def test_the_class_count_is_a_template_field():
    text = render_network_text("fcn8s", 7)
    assert "{{num_classes}}" not in text
    net = load_network("fcn8s", 7)
    score_fr = next(layer for layer in net.layer if layer.name == "score_fr")
    upscore8 = next(layer for layer in net.layer if layer.name == "upscore8")
    assert score_fr.convolution_param.num_output == 7
    assert (upscore8.convolution_param.num_output, upscore8.convolution_param.group) == (7, 7)
    with pytest.raises(UserError, match="class count must be at least 1"):
        render_network_text("fcn8s", 0)


@pytest.mark.parametrize("name", [network.name for network in list_networks()])
def test_every_loss_and_accuracy_skips_the_datasets_ignore_value(name):
    for ignore, expected in ((None, 255), (11, 11)):
        net = load_network(name, 12) if ignore is None else load_network(name, 12, ignore)
        labelled = [layer for layer in net.layer if layer.type in ("SoftmaxWithLoss", "Accuracy")]
        if not labelled:  # colorization scores ab bins (InfogainLoss) or regresses chroma: nothing to ignore
            losses = {layer.type for layer in net.layer} & {"InfogainLoss", "EuclideanLoss"}
            assert losses, f"{name} has no loss"
            continue
        for layer in labelled:
            param = layer.loss_param if layer.type == "SoftmaxWithLoss" else layer.accuracy_param
            assert param.ignore_label == expected, f"{name} layer {layer.name}"


def test_unknown_network_lists_the_known_ones():
    with pytest.raises(UserError, match="fcn_tiny"):
        load_network("fcn_huge", 3)


def test_fcn_tiny_scores_every_input_pixel_at_odd_sizes():
    # 121 x 157: ceil pooling gives 61x79 -> 31x40 -> 16x20; the head must still cover the input.
    deploy = deploy_net(load_network("fcn_tiny", 5), (2, 3, 121, 157))
    shapes = blob_shapes(deploy)
    assert shapes["score"] == (2, 5, 121, 157)
    assert shapes["pool3"] == (2, 64, 16, 20)


def test_deploy_net_replaces_data_with_one_input_and_drops_loss_layers():
    deploy = deploy_net(load_network("fcn_alexnet", 21), (1, 3, 375, 500))
    types = [layer.type for layer in deploy.layer]
    assert types[0] == "Input" and types.count("Input") == 1
    assert not {"Data", "SoftmaxWithLoss", "Accuracy"} & set(types)
    assert blob_shapes(deploy)["score"] == (1, 21, 375, 500)


def test_train_and_val_nets_read_the_dataset_lmdbs(tmp_path):
    net = bind_data_sources(load_network("fcn_tiny", 3), tmp_path, batch_size=2)
    train = filter_net(net, phase="train")
    val = filter_net(net, phase="test", stages=["val"])
    sources = {(layer.top[0], layer.data_param.source, layer.data_param.batch_size)
               for layer in train.layer if layer.type == "Data"}
    assert sources == {("data", str(tmp_path / "train_db" / "features"), 2),
                       ("label", str(tmp_path / "train_db" / "labels"), 2)}
    assert {layer.data_param.source for layer in val.layer if layer.type == "Data"} == {
        str(tmp_path / "val_db" / "features"), str(tmp_path / "val_db" / "labels")}
    assert "accuracy" in {layer.name for layer in val.layer}
    assert "accuracy" not in {layer.name for layer in train.layer}
