"""Caffe's upgrade chain (caffe-spec §1.4, test_upgrade_proto.cpp): old nets and solvers load as the
current format, field by field, and upgrading a current net changes nothing."""
import logging

import pytest
from google.protobuf import text_format

from digitslite.caffe import caffe_pb2
from digitslite.caffe.prototxt import (
    PrototxtError,
    parse_net,
    parse_solver,
    read_net,
    read_solver,
    upgrade_net,
)
from digitslite.caffe.upgrade import V1_TYPE_NAMES

V0_WITH_PADDING = """
name: 'CaffeNet'
layers { layer { name: 'data' type: 'data' source: 'train-leveldb' meanfile: 'mean.binaryproto'
                 batchsize: 256 cropsize: 227 mirror: true }
         top: 'data' top: 'label' }
layers { layer { name: 'pad1' type: 'padding' pad: 2 } bottom: 'data' top: 'pad1' }
layers { layer { name: 'conv1' type: 'conv' num_output: 96 kernelsize: 11 stride: 4
                 weight_filler { type: 'gaussian' std: 0.01 } bias_filler { type: 'constant' value: 0 }
                 blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }
         bottom: 'pad1' top: 'conv1' }
layers { layer { name: 'conv2' type: 'conv' num_output: 8 kernelsize: 3 } bottom: 'pad1' top: 'conv2' }
layers { layer { name: 'pad2' type: 'padding' pad: 1 } bottom: 'conv1' top: 'pad2' }
layers { layer { name: 'pool1' type: 'pool' pool: MAX kernelsize: 3 stride: 2 } bottom: 'pad2' top: 'pool1' }
layers { layer { name: 'fc8' type: 'innerproduct' num_output: 1000 } bottom: 'pool1' top: 'fc8' }
layers { layer { name: 'loss' type: 'softmax_loss' } bottom: 'fc8' bottom: 'label' }
"""


def _raw(text: str) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


def _layers(net: caffe_pb2.NetParameter) -> dict[str, caffe_pb2.LayerParameter]:
    return {layer.name: layer for layer in net.layer}


def test_v0_padding_layers_fold_into_the_conv_and_pool_they_feed():
    net = parse_net(V0_WITH_PADDING)
    assert [layer.name for layer in net.layer] == ["data", "conv1", "conv2", "pool1", "fc8", "loss"]
    layers = _layers(net)
    assert list(layers["conv1"].bottom) == ["data"] and list(layers["conv2"].bottom) == ["data"]
    assert [list(layers[name].convolution_param.pad) for name in ("conv1", "conv2")] == [[2], [2]]
    assert list(layers["pool1"].bottom) == ["conv1"] and layers["pool1"].pooling_param.pad == 1
    assert len(net.layers) == 0


def test_v0_layers_become_current_layers_field_by_field():
    layers = _layers(parse_net(V0_WITH_PADDING))
    conv1 = layers["conv1"]
    assert conv1.type == "Convolution"
    param = conv1.convolution_param
    assert (param.num_output, list(param.kernel_size), list(param.stride)) == (96, [11], [4])
    assert (param.weight_filler.type, param.weight_filler.std) == ("gaussian", pytest.approx(0.01))
    assert [(spec.lr_mult, spec.decay_mult) for spec in conv1.param] == [(1, 1), (2, 0)]
    data = layers["data"]
    assert data.type == "Data"
    assert (data.data_param.source, data.data_param.batch_size) == ("train-leveldb", 256)
    transform = data.transform_param
    assert (transform.crop_size, transform.mirror, transform.mean_file) == (227, True, "mean.binaryproto")
    pool = layers["pool1"].pooling_param
    assert layers["pool1"].type == "Pooling" and pool.pool == caffe_pb2.PoolingParameter.MAX
    assert (pool.kernel_size, pool.stride) == (3, 2)
    assert layers["fc8"].type == "InnerProduct" and layers["fc8"].inner_product_param.num_output == 1000
    assert layers["loss"].type == "SoftmaxWithLoss"


def test_every_v0_field_lands_where_caffe_puts_it():
    text = """
    input: 'data' input_dim: 64 input_dim: 3 input_dim: 32 input_dim: 32
    layers { layer { name: 'db' type: 'data' source: 'src' batchsize: 256 rand_skip: 73 scale: 0.25
                     cropsize: 227 mirror: true meanfile: 'mean' } top: 'db' }
    layers { layer { name: 'img' type: 'images' source: 'list.txt' batchsize: 8 shuffle_images: true
                     new_height: 40 new_width: 30 rand_skip: 5 } top: 'img' }
    layers { layer { name: 'win' type: 'window_data' source: 'w.txt' det_fg_threshold: 0.25
                     det_bg_threshold: 0.75 det_fg_fraction: 0.5 det_context_pad: 16 det_crop_mode: 'square' }
             top: 'win' }
    layers { layer { name: 'norm' type: 'lrn' local_size: 3 alpha: 0.5 beta: 0.25 k: 2 }
             bottom: 'data' top: 'n' }
    layers { layer { name: 'drop' type: 'dropout' dropout_ratio: 0.25 } bottom: 'n' top: 'n' }
    layers { layer { name: 'cat' type: 'concat' concat_dim: 2 } bottom: 'n' bottom: 'db' top: 'cat' }
    layers { layer { name: 'ave' type: 'pool' pool: AVE kernelsize: 2 stride: 1 pad: 1 }
             bottom: 'n' top: 'ave' }
    layers { layer { name: 'grp' type: 'conv' group: 2 biasterm: false } bottom: 'n' top: 'grp' }
    layers { layer { name: 'info' type: 'infogain_loss' source: 'H.binaryproto' } bottom: 'n' bottom: 'db' }
    layers { layer { name: 'out' type: 'hdf5_output' hdf5_output_param { file_name: 'out.h5' } } bottom: 'n' }
    """
    net = parse_net(text)
    layers = _layers(net)
    db = layers["db"]
    assert (db.data_param.source, db.data_param.batch_size, db.data_param.rand_skip) == ("src", 256, 73)
    assert not db.data_param.HasField("scale")
    t = db.transform_param
    assert (t.scale, t.crop_size, t.mirror, t.mean_file) == (0.25, 227, True, "mean")
    img = layers["img"].image_data_param
    assert (img.source, img.batch_size, img.shuffle, img.new_height, img.new_width, img.rand_skip) == \
        ("list.txt", 8, True, 40, 30, 5)
    win = layers["win"].window_data_param
    assert (win.source, win.fg_threshold, win.bg_threshold, win.fg_fraction) == ("w.txt", 0.25, 0.75, 0.5)
    assert (win.context_pad, win.crop_mode) == (16, "square")
    lrn = layers["norm"].lrn_param
    assert (lrn.local_size, lrn.alpha, lrn.beta, lrn.k) == (3, 0.5, 0.25, 2)
    assert layers["drop"].dropout_param.dropout_ratio == 0.25
    assert layers["cat"].concat_param.concat_dim == 2
    ave = layers["ave"].pooling_param
    assert (ave.pool, ave.kernel_size, ave.stride, ave.pad) == (caffe_pb2.PoolingParameter.AVE, 2, 1, 1)
    grp = layers["grp"].convolution_param
    assert (grp.group, grp.bias_term) == (2, False)
    assert layers["info"].infogain_loss_param.source == "H.binaryproto"
    assert layers["out"].hdf5_output_param.file_name == "out.h5"
    assert [layer.type for layer in net.layer] == [
        "Input", "Data", "ImageData", "WindowData", "LRN", "Dropout", "Concat", "Pooling", "Convolution",
        "InfogainLoss", "HDF5Output"]
    assert list(net.layer[0].input_param.shape[0].dim) == [64, 3, 32, 32]


def test_a_v0_field_the_layer_type_cannot_hold_is_dropped_with_a_warning(caplog):
    text = "layers { layer { name: 'r' type: 'relu' num_output: 3 } bottom: 'x' top: 'x' }\ninput: 'x'"
    with caplog.at_level(logging.WARNING, logger="digitslite.caffe.upgrade"):
        net = parse_net(text)
    assert net.layer[0].type == "ReLU" and not net.layer[0].HasField("convolution_param")
    assert "num_output" in caplog.text and "'r'" in caplog.text


def test_v0_errors_name_the_layer_and_its_place():
    unknown_type = "layers {\n  layer {\n    name: 'c'\n    type: 'convolution'\n  }\n}\n"
    with pytest.raises(PrototxtError, match=r"^v0\.prototxt:4:5: unknown V0 layer type 'convolution'"):
        parse_net(unknown_type, "v0.prototxt")
    padding_into_relu = ("input: 'x'\n"
                         "layers { layer { name: 'p' type: 'padding' pad: 1 } bottom: 'x' top: 'p' }\n"
                         "layers { layer { name: 'r' type: 'relu' } bottom: 'p' top: 'r' }\n")
    with pytest.raises(PrototxtError, match=r"^v0\.prototxt:3:1: the padding layer 'p' feeds a 'relu' layer"):
        parse_net(padding_into_relu, "v0.prototxt")


def test_padding_fold_is_idempotent():
    once = parse_net(V0_WITH_PADDING)
    twice = caffe_pb2.NetParameter()
    twice.CopyFrom(once)
    assert upgrade_net(twice) == once


V1_NET = """
name: "v1net"
layers {
  name: "data" type: DATA top: "data" top: "label"
  data_param { source: "db" batch_size: 64 scale: 0.00390625 mean_file: "m.binaryproto" crop_size: 24
               mirror: true }
  include { phase: TRAIN }
}
layers {
  name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 param: "w"
  convolution_param { num_output: 20 kernel_size: 5 }
}
layers {
  name: "ip" type: INNER_PRODUCT bottom: "conv1" top: "ip"
  param: "shared" param: "" blob_share_mode: STRICT blob_share_mode: PERMISSIVE
  inner_product_param { num_output: 10 }
}
layers { name: "loss" type: SOFTMAX_LOSS bottom: "ip" bottom: "label" loss_weight: 2
         exclude { stage: "deploy" } }
"""


def test_v1_layers_become_current_layers():
    net = parse_net(V1_NET)
    assert len(net.layers) == 0 and net.name == "v1net"
    data, conv1, ip, loss = net.layer
    assert [layer.type for layer in net.layer] == ["Data", "Convolution", "InnerProduct", "SoftmaxWithLoss"]
    assert data.include[0].phase == caffe_pb2.TRAIN and list(loss.exclude[0].stage) == ["deploy"]
    assert [(p.name, p.lr_mult, p.decay_mult) for p in conv1.param] == [("w", 1, 1), ("", 2, 0)]
    assert not conv1.param[1].HasField("name")
    assert [(p.name, p.share_mode) for p in ip.param] == \
        [("shared", caffe_pb2.ParamSpec.STRICT), ("", caffe_pb2.ParamSpec.PERMISSIVE)]
    assert (conv1.convolution_param.num_output, list(conv1.convolution_param.kernel_size)) == (20, [5])
    assert list(loss.loss_weight) == [2]


def test_v1_data_transform_fields_move_into_transform_param():
    data = parse_net(V1_NET).layer[0]
    assert (data.data_param.source, data.data_param.batch_size) == ("db", 64)
    assert not any(data.data_param.HasField(name) for name in ("scale", "mean_file", "crop_size", "mirror"))
    t = data.transform_param
    assert (t.scale, t.mean_file, t.crop_size, t.mirror) == (0.00390625, "m.binaryproto", 24, True)


@pytest.mark.parametrize(("enum_name", "type_name"), [
    ("NONE", ""), ("ABSVAL", "AbsVal"), ("DECONVOLUTION", "Deconvolution"), ("HDF5_DATA", "HDF5Data"),
    ("IM2COL", "Im2col"), ("SIGMOID_CROSS_ENTROPY_LOSS", "SigmoidCrossEntropyLoss"), ("TANH", "TanH"),
    ("SOFTMAX_LOSS", "SoftmaxWithLoss"), ("MULTINOMIAL_LOGISTIC_LOSS", "MultinomialLogisticLoss"),
])
def test_v1_type_enum_names_map_to_caffe_type_strings(enum_name, type_name):
    net = parse_net(f'layers {{ name: "l" type: {enum_name} }}')
    assert net.layer[0].type == type_name


def test_every_v1_enum_value_in_the_schema_has_a_type_string():
    assert set(V1_TYPE_NAMES) == set(caffe_pb2.V1LayerParameter.LayerType.keys())


def test_layer_and_layers_together_are_refused_at_the_old_block():
    text = 'layer { name: "new" type: "ReLU" }\nlayers { name: "old" type: RELU }\n'
    with pytest.raises(PrototxtError, match=r"^mixed\.prototxt:2:1: the net mixes `layer \{ \}` blocks"):
        parse_net(text, "mixed.prototxt")


def test_input_dim_becomes_an_input_layer_in_front():
    net = parse_net('name: "deploy"\ninput: "data"\n'
                    'input_dim: 10\ninput_dim: 3\ninput_dim: 227\ninput_dim: 227\n'
                    'layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" }\n')
    first, conv1 = net.layer
    assert (first.name, first.type, list(first.top)) == ("input", "Input", ["data"])
    assert [list(shape.dim) for shape in first.input_param.shape] == [[10, 3, 227, 227]]
    assert conv1.name == "conv1"
    assert len(net.input) == len(net.input_dim) == len(net.input_shape) == 0


def test_input_shape_gives_one_shape_per_input():
    net = parse_net('input: "a"\ninput_shape { dim: 1 dim: 2 }\ninput: "b"\ninput_shape { dim: 3 }\n'
                    'layer { name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "c" }\n')
    assert list(net.layer[0].top) == ["a", "b"]
    assert [list(shape.dim) for shape in net.layer[0].input_param.shape] == [[1, 2], [3]]


def test_input_names_without_shapes_are_only_stripped():
    raw = _raw('input: "data"\nlayer { name: "r" type: "ReLU" bottom: "data" top: "data" }')
    net = upgrade_net(raw)
    assert [layer.name for layer in net.layer] == ["r"] and len(net.input) == 0


def test_input_dim_count_mismatch_points_at_input_dim():
    with pytest.raises(PrototxtError, match=r"^d\.prototxt:2:1: 1 input\(s\) need 4 input_dim values"):
        parse_net('input: "data"\ninput_dim: 1\ninput_dim: 3\nlayer { name: "r" type: "ReLU" }', "d.prototxt")


def test_batch_norm_with_three_params_gets_zero_multipliers():
    net = parse_net('layer { name: "bn" type: "BatchNorm" param { name: "m" lr_mult: 1 } '
                    'param { lr_mult: 1 } param { lr_mult: 1 decay_mult: 5 } }\n'
                    'layer { name: "bn2" type: "BatchNorm" param { lr_mult: 1 } param { lr_mult: 1 } }')
    bn, bn2 = net.layer
    assert [(p.lr_mult, p.decay_mult) for p in bn.param] == [(0, 0), (0, 0), (0, 0)]
    assert bn.param[0].name == "m"
    assert [p.lr_mult for p in bn2.param] == [1, 1]


@pytest.mark.parametrize("name", [
    "caffe__mnist__lenet_train_test.prototxt", "fcn__voc-fcn8s__train.prototxt",
    "caffe__bvlc_alexnet__train_val.prototxt", "fcn__voc-fcn8s__deploy.prototxt",
])
def test_upgrading_a_current_net_changes_nothing(peer, name):
    raw = _raw(peer(name).read_text())
    assert read_net(peer(name)) == raw
    copy = caffe_pb2.NetParameter()
    copy.CopyFrom(raw)
    assert upgrade_net(copy) == raw


@pytest.mark.parametrize(("enum_name", "type_name"), [
    ("SGD", "SGD"), ("NESTEROV", "Nesterov"), ("ADAGRAD", "AdaGrad"), ("RMSPROP", "RMSProp"),
    ("ADADELTA", "AdaDelta"), ("ADAM", "Adam"),
])
def test_solver_type_enum_becomes_the_type_string(enum_name, type_name):
    solver = parse_solver(f'net: "n.prototxt"\nsolver_type: {enum_name}\nbase_lr: 0.5\n'
                          'weights: "a"\nweights: "b"\n')
    assert solver.type == type_name and not solver.HasField("solver_type")
    assert (solver.net, solver.base_lr, list(solver.weights)) == ("n.prototxt", 0.5, ["a", "b"])


def test_solver_type_and_type_together_are_refused_at_solver_type():
    with pytest.raises(PrototxtError, match=r"^s\.prototxt:2:1: the solver sets both the old `solver_type`"):
        parse_solver('type: "Adam"\nsolver_type: ADAM\n', "s.prototxt")


def test_snapshot_prefix_defaults_to_the_solver_path_without_extension(tmp_path):
    path = tmp_path / "lenet_solver.prototxt"
    path.write_text('net: "n.prototxt"\nbase_lr: 0.01\n')
    assert read_solver(path).snapshot_prefix == str(tmp_path / "lenet_solver")


def test_snapshot_prefix_naming_a_directory_gets_the_solver_stem(tmp_path):
    (tmp_path / "snaps").mkdir()
    path = tmp_path / "lenet_solver.prototxt"
    path.write_text(f'net: "n.prototxt"\nsnapshot_prefix: "{tmp_path / "snaps"}"\n')
    assert read_solver(path).snapshot_prefix == str(tmp_path / "snaps" / "lenet_solver")
    path.write_text(f'net: "n.prototxt"\nsnapshot_prefix: "{tmp_path / "snaps" / "run"}"\n')
    assert read_solver(path).snapshot_prefix == str(tmp_path / "snaps" / "run")
