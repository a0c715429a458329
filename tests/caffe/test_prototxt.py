"""Reading and writing Caffe nets and solvers: real files parse, round trips are exact, and every
malformed file is one located line saying what is wrong and how to fix it."""
import pickle

import pytest
from google.protobuf import text_format

from digitslite.caffe import caffe_pb2
from digitslite.caffe.prototxt import (
    PrototxtError,
    net_to_text,
    parse_net,
    parse_net_located,
    parse_solver,
    read_net,
    read_net_located,
    read_solver,
    write_net,
    write_solver,
)
from digitslite.caffe.sourcemap import scan_text
from digitslite.errors import UserError

PEER_NETS = [
    "caffe__bvlc_alexnet__deploy.prototxt",
    "caffe__bvlc_alexnet__train_val.prototxt",
    "caffe__mnist__lenet.prototxt",
    "caffe__mnist__lenet_train_test.prototxt",
    "digits__binary-segmentation__segmentation-model.prototxt",
    "digits__semantic-segmentation__fcn_alexnet.deploy.prototxt",
    "digits__semantic-segmentation__fcn_alexnet.prototxt",
    "digits__standard-networks__caffe__alexnet.prototxt",
    "digits__standard-networks__caffe__lenet.prototxt",
    "fcn__voc-fcn-alexnet__train.prototxt",
    "fcn__voc-fcn-alexnet__val.prototxt",
    "fcn__voc-fcn16s__train.prototxt",
    "fcn__voc-fcn32s__train.prototxt",
    "fcn__voc-fcn8s__deploy.prototxt",
    "fcn__voc-fcn8s__train.prototxt",
    "fcn__voc-fcn8s__val.prototxt",
    "mnistdeploy__mnist_deploy.prototxt",
]
PEER_SOLVERS = [
    "caffe__bvlc_alexnet__solver.prototxt",
    "caffe__mnist__lenet_solver.prototxt",
    "fcn__voc-fcn-alexnet__solver.prototxt",
    "fcn__voc-fcn8s__solver.prototxt",
]
CAFFEMODEL = "mnistdeploy__lenet_iter_10000.caffemodel"


def _error(text: str, parse=parse_net) -> str:
    with pytest.raises(PrototxtError) as caught:
        parse(text, "bad.prototxt")
    message = str(caught.value)
    assert "\n" not in message
    return message


# ---- real files -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", PEER_NETS)
def test_every_peer_net_parses_and_round_trips_through_text(peer, name):
    net = read_net(peer(name))
    assert len(net.layer) > 0 and all(layer.type for layer in net.layer)
    assert parse_net(net_to_text(net)) == net


@pytest.mark.parametrize("name", PEER_SOLVERS)
def test_every_peer_solver_parses_and_round_trips(peer, name, tmp_path):
    solver = read_solver(peer(name))
    assert solver.base_lr > 0 and solver.max_iter > 0
    write_solver(solver, tmp_path / "solver.prototxt")
    assert read_solver(tmp_path / "solver.prototxt") == solver


def test_peer_facts_survive_parsing(peer):
    crops = [layer.crop_param.offset[0] for layer in read_net(peer("fcn__voc-fcn8s__train.prototxt")).layer
             if layer.type == "Crop"]
    assert crops == [5, 9, 31]                       # MANIFEST: voc-fcn8s offsets
    alexnet = {layer.name: layer for layer in read_net(peer("caffe__bvlc_alexnet__deploy.prototxt")).layer}
    assert alexnet["fc6"].type == "InnerProduct" and alexnet["fc6"].inner_product_param.num_output == 4096
    solver = read_solver(peer("caffe__mnist__lenet_solver.prototxt"))
    assert (solver.lr_policy, solver.max_iter) == ("inv", 10000)
    assert solver.snapshot_prefix == "examples/mnist/lenet"


def test_caffemodel_is_read_as_binary_and_rewritten_byte_identically(peer, tmp_path):
    source = peer(CAFFEMODEL)
    net = read_net(source)
    assert [layer.name for layer in net.layer if len(layer.blobs)] == ["conv1", "conv2", "ip1", "ip2"]
    assert list(net.layer[1].blobs[0].shape.dim) == [20, 1, 5, 5]           # MANIFEST: conv1 20x1x5x5
    write_net(net, tmp_path / "copy.caffemodel")
    assert (tmp_path / "copy.caffemodel").read_bytes() == source.read_bytes()


def test_binary_is_detected_by_content_not_extension(peer, tmp_path):
    net = read_net(peer("caffe__mnist__lenet.prototxt"))
    write_net(net, tmp_path / "lenet.bin", binary=True)
    write_net(net, tmp_path / "lenet_text.caffemodel", binary=False)
    assert b"layer {" not in (tmp_path / "lenet.bin").read_bytes()
    assert (tmp_path / "lenet_text.caffemodel").read_text().startswith('name: "LeNet"')
    assert read_net(tmp_path / "lenet.bin") == net
    assert read_net(tmp_path / "lenet_text.caffemodel") == net


def test_write_net_picks_the_format_from_the_extension(peer, tmp_path):
    net = read_net(peer("caffe__mnist__lenet.prototxt"))
    write_net(net, tmp_path / "a.prototxt")
    write_net(net, tmp_path / "a.binaryproto")
    assert (tmp_path / "a.prototxt").read_text() == net_to_text(net)
    assert (tmp_path / "a.binaryproto").read_bytes() == net.SerializeToString()


def test_writing_replaces_the_file_and_leaves_no_temporary_behind(peer, tmp_path):
    target = tmp_path / "net.prototxt"
    target.write_text("old contents")
    write_net(read_net(peer("caffe__mnist__lenet.prototxt")), target)
    assert target.read_text().startswith('name: "LeNet"')
    assert [path.name for path in tmp_path.iterdir()] == ["net.prototxt"]


def test_writing_into_a_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"nope/net\.prototxt: cannot write the file"):
        write_net(parse_net('layer { name: "a" type: "Input" top: "a" }'), tmp_path / "nope" / "net.prototxt")


# ---- source maps ----------------------------------------------------------------------------------

LOCATED_TEXT = """\
name: "located"  # layer { name: "in a comment" }
layer {
  name: "data"
  type: "Input"
  top: "data"
  input_param { shape { dim: 1 } }
}
  layer: {
    name: 'conv1'  # quoted with single quotes, block opened with a colon
    type: "Convolution"
    bottom: "data"
    top: "conv1"
    param { name: "not the layer name" }
    convolution_param { num_output: 1 kernel_size: 1 }
  }
layer { type: "ReLU" name: "relu1" bottom: "conv1" top: "conv1" }
"""


def test_source_map_finds_each_layer_block_and_its_fields():
    net, source_map = parse_net_located(LOCATED_TEXT, "located.prototxt")
    assert [layer.name for layer in net.layer] == ["data", "conv1", "relu1"]
    assert source_map.layer_starts == {"data": (2, 1), "conv1": (8, 3), "relu1": (16, 1)}
    assert source_map.where("conv1") == "located.prototxt:8:3"
    assert source_map.where("conv1", "bottom", "data") == "located.prototxt:11:5"
    assert source_map.where("relu1", "top") == "located.prototxt:16:52"
    assert source_map.where("nowhere") == "located.prototxt"


def test_source_map_knows_old_layers_blocks_and_v0_nested_names():
    text = ('layers {\n  name: "v1"\n  type: RELU\n}\n'
            'layers {\n  layer {\n    name: "v0"\n    type: "relu"\n  }\n  bottom: "x"\n}\n')
    source_map = scan_text(text, "t.prototxt").source_map
    assert source_map.layer_starts == {"v1": (1, 1), "v0": (5, 1)}
    assert source_map.where("v0", "type") == "t.prototxt:8:5"


def test_binary_files_have_an_empty_source_map(peer):
    _, source_map = read_net_located(peer(CAFFEMODEL))
    assert source_map.layer_starts == {} and source_map.where("conv1") == str(peer(CAFFEMODEL))


# ---- malformed files: one line, file:line:column, the token, the fix ------------------------------

def test_truncated_file_points_at_the_end_and_the_open_block():
    text = 'name: "net"\nlayer {\n  name: "conv1"\n  convolution_param {\n    num_output: 3\n'
    message = _error(text)
    assert message.startswith("bad.prototxt:5:18: the file ends inside the 'convolution_param' block "
                              "opened at 4:3 (near '3'); add the missing '}'")


def test_every_cut_inside_a_layer_of_a_real_net_is_a_located_truncation(peer):
    text = peer("caffe__mnist__lenet.prototxt").read_text()
    cuts_inside_a_block = [end for end in range(30, len(text) - 3, 17)
                           if text[:end].count("{") > text[:end].count("}")]
    assert len(cuts_inside_a_block) > 50
    for end in cuts_inside_a_block:
        with pytest.raises(PrototxtError) as caught:
            parse_net(text[:end], "lenet.prototxt")
        assert caught.value.line is not None and caught.value.column is not None
        assert "the file ends" in str(caught.value) or "has no closing quote" in str(caught.value)


def test_unknown_field_names_the_message_and_suggests_the_spelling():
    text = 'layer {\n  name: "conv1"\n  convolution_param { kernal_size: 3 }\n}\n'
    assert _error(text) == ("bad.prototxt:3:23: unknown field 'kernal_size' in ConvolutionParameter "
                            "(near 'kernal_size'); did you mean 'kernel_size'?")


def test_wrong_enum_value_lists_the_valid_ones():
    text = 'layer {\n  name: "data"\n  include { phase: TRIAN }\n}\n'
    assert _error(text) == ("bad.prototxt:3:20: 'TRIAN' is not a value of Phase (near 'TRIAN'); "
                            "did you mean TRAIN? use one of TRAIN, TEST")


@pytest.mark.parametrize(("value", "problem"), [
    ("3.5", "'3.5' is not a whole number"),
    ("-1", "-1 is out of range for this field"),
    ("three", "'three' is not a whole number"),
])
def test_bad_numbers_are_located(value, problem):
    text = f'layer {{ name: "c" convolution_param {{ num_output: {value} }} }}'
    assert _error(text).startswith(f"bad.prototxt:1:51: {problem} (near '{value}')")


def test_an_extra_closing_brace_is_pointed_at():
    assert _error('layer {\n  name: "a"\n}\n}\n').startswith(
        "bad.prototxt:4:1: '}' closes no open block (near '}'); remove this '}'")


def test_a_missing_closing_brace_in_the_middle_names_the_open_block():
    text = 'layer {\n  name: "a"\n  convolution_param { num_output: 1 }\nlayer {\n  name: "b"\n}\n'
    assert _error(text) == ("bad.prototxt:4:1: unknown field 'layer' in LayerParameter (near 'layer'); "
                            "a '}' is probably missing before this line: the 'layer' block opened at 1:1 is "
                            "still open")


def test_v1_enum_type_in_a_current_layer_says_what_to_write():
    assert _error('layer { name: "c" type: CONVOLUTION }') == (
        "bad.prototxt:1:25: expected a quoted string, found CONVOLUTION (near 'CONVOLUTION'); "
        'write type: "Convolution" (enum names such as CONVOLUTION belong to the old `layers { }` format)')


def test_empty_and_comment_only_files_are_refused():
    expected = "bad.prototxt: holds no definition: the file is empty or only comments; write the network"
    assert _error("").startswith(expected)
    assert _error("  # nothing but a comment\n\n").startswith(expected)


def test_a_net_without_layers_is_not_a_net():
    assert _error('name: "lonely"').startswith("bad.prototxt: is not a Caffe network: it defines no layers")


def test_a_solver_given_as_net_and_a_net_given_as_solver_are_recognised():
    assert _error('base_lr: 0.01\n').endswith("this looks like a solver file, not a network definition")
    assert _error('layer { name: "a" }\n', parse_solver).endswith(
        "this looks like a network definition, not a solver file")


def test_unreadable_and_damaged_files(peer, tmp_path):
    with pytest.raises(PrototxtError, match=r"missing\.prototxt: cannot read the file"):
        read_net(tmp_path / "missing.prototxt")
    truncated = tmp_path / "truncated.caffemodel"
    truncated.write_bytes(peer(CAFFEMODEL).read_bytes()[:5000])
    with pytest.raises(PrototxtError, match=r"truncated\.caffemodel: is not a valid binary NetParameter"):
        read_net(truncated)


def test_a_stray_control_character_in_text_is_located(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_bytes(b'layer {\n  name: "a"\x01\n}\n')
    with pytest.raises(PrototxtError, match=r"net\.prototxt:2:12: holds a control character \(byte 0x01\)"):
        read_net(path)


def test_a_binary_file_given_as_solver_is_refused(peer):
    with pytest.raises(PrototxtError, match=r"is not a text solver file"):
        read_solver(peer(CAFFEMODEL))


def test_prototxt_error_keeps_its_parts_and_pickles():
    error = PrototxtError("bad thing", path="n.prototxt", line=3, column=7, token='"conv9"', hint="fix it")
    assert str(error) == "n.prototxt:3:7: bad thing (near 'conv9'); fix it"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.line, copy.column, copy.token, str(copy)) == \
        ("n.prototxt", 3, 7, '"conv9"', str(error))
    assert str(PrototxtError("whole file", path="n.prototxt")) == "n.prototxt: whole file"


def test_text_round_trip_keeps_float_values_exactly():
    net = parse_net('layer { name: "d" type: "Data" top: "d" transform_param { scale: 0.00390625 } '
                    'loss_weight: 1e-05 }')
    again = text_format.Parse(net_to_text(net), caffe_pb2.NetParameter())
    assert again.layer[0].transform_param.scale == 0.00390625
    assert again == net
