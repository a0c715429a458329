"""Parameter blob shapes per layer, in Caffe's blob order (caffe-spec §2.6, §5)."""
from google.protobuf import text_format

from digitslite.caffe import caffe_pb2
from digitslite.caffe.caffemodel import read_weights
from digitslite.caffe.paramshapes import param_shapes


def net_from(text: str) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


def with_input(dims: list[int], layers: str) -> caffe_pb2.NetParameter:
    shape = " ".join(f"dim: {d}" for d in dims)
    data = f'layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ {shape} }} }} }}\n'
    return net_from(data + layers)


def read_text_net(path) -> caffe_pb2.NetParameter:
    return net_from(path.read_text())


def test_lenet_deploy_shapes_match_the_trained_caffemodel(peer):
    net = read_text_net(peer("mnistdeploy__mnist_deploy.prototxt"))

    shapes = param_shapes(net)

    trained = read_weights(peer("mnistdeploy__lenet_iter_10000.caffemodel"))
    assert {name: blobs for name, blobs in shapes.items() if blobs} == {
        name: [array.shape for array in arrays] for name, arrays in trained.items()
    }
    assert shapes["data"] == [] and shapes["pool1"] == []


def test_alexnet_deploy_shapes(peer):
    shapes = param_shapes(read_text_net(peer("caffe__bvlc_alexnet__deploy.prototxt")))

    assert {name: blobs for name, blobs in shapes.items() if blobs} == {
        "conv1": [(96, 3, 11, 11), (96,)],
        "conv2": [(256, 48, 5, 5), (256,)],  # group 2: 96 / 2 input channels per filter
        "conv3": [(384, 256, 3, 3), (384,)],
        "conv4": [(384, 192, 3, 3), (384,)],
        "conv5": [(256, 192, 3, 3), (256,)],
        "fc6": [(4096, 9216), (4096,)],  # pool5 is 256 x 6 x 6
        "fc7": [(4096, 4096), (4096,)],
        "fc8": [(1000, 4096), (1000,)],
    }


def test_input_shapes_change_inner_product_fan_in(peer):
    net = read_text_net(peer("mnistdeploy__mnist_deploy.prototxt"))

    # 32x32 input: conv 28, pool 14, conv 10, pool 5 -> 50 x 5 x 5 = 1250
    shapes = param_shapes(net, {"data": (1, 1, 32, 32)})

    assert shapes["ip1"] == [(500, 1250), (500,)]


def test_deconvolution_weight_is_input_channels_first():
    net = with_input([1, 3, 4, 4], '''
        layer { name: "up" type: "Deconvolution" bottom: "data" top: "up"
                convolution_param { num_output: 6 kernel_size: 4 stride: 2 group: 3 } }
        layer { name: "plain" type: "Deconvolution" bottom: "data" top: "plain"
                convolution_param { num_output: 5 kernel_size: 3 bias_term: false } }''')

    shapes = param_shapes(net)

    assert shapes["up"] == [(3, 2, 4, 4), (6,)]
    assert shapes["plain"] == [(3, 5, 3, 3)]


def test_convolution_kernel_forms_and_axes():
    net = with_input([1, 4, 8, 9], '''
        layer { name: "hw" type: "Convolution" bottom: "data" top: "hw"
                convolution_param { num_output: 2 kernel_h: 3 kernel_w: 1 group: 2 } }''')
    assert param_shapes(net)["hw"] == [(2, 2, 3, 1), (2,)]

    volume = with_input([1, 2, 4, 5, 6], '''
        layer { name: "c3d" type: "Convolution" bottom: "data" top: "c3d"
                convolution_param { num_output: 7 kernel_size: 1 kernel_size: 2 kernel_size: 3 } }''')
    assert param_shapes(volume)["c3d"] == [(7, 2, 1, 2, 3), (7,)]


def test_inner_product_axis_and_transpose():
    net = with_input([2, 3, 4, 5], '''
        layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
                inner_product_param { num_output: 6 axis: 2 } }
        layer { name: "ipt" type: "InnerProduct" bottom: "data" top: "ipt"
                inner_product_param { num_output: 6 transpose: true bias_term: false } }''')

    shapes = param_shapes(net)

    assert shapes["ip"] == [(6, 20), (6,)]
    assert shapes["ipt"] == [(60, 6)]


def test_batch_norm_scale_bias_prelu():
    net = with_input([2, 3, 4, 5], '''
        layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn" }
        layer { name: "sc" type: "Scale" bottom: "bn" top: "sc" scale_param { bias_term: true } }
        layer { name: "sc_all" type: "Scale" bottom: "bn" top: "sc_all" scale_param { num_axes: -1 } }
        layer { name: "sc_scalar" type: "Scale" bottom: "bn" top: "sc_scalar" scale_param { num_axes: 0 } }
        layer { name: "sc_hw" type: "Scale" bottom: "bn" top: "sc_hw" scale_param { axis: -2 num_axes: 2 } }
        layer { name: "bias" type: "Bias" bottom: "bn" top: "bias" }
        layer { name: "pr" type: "PReLU" bottom: "bn" top: "pr" }
        layer { name: "pr1" type: "PReLU" bottom: "bn" top: "pr1" prelu_param { channel_shared: true } }''')

    shapes = param_shapes(net)

    assert shapes["bn"] == [(3,), (3,), (1,)]
    assert shapes["sc"] == [(3,), (3,)]
    assert shapes["sc_all"] == [(3, 4, 5)]
    assert shapes["sc_scalar"] == [()]
    assert shapes["sc_hw"] == [(4, 5)]
    assert shapes["bias"] == [(3,)]
    assert shapes["pr"] == [(3,)]
    assert shapes["pr1"] == [()]


def test_two_bottom_scale_learns_only_its_bias():
    net = with_input([2, 3, 4, 5], '''
        layer { name: "w" type: "Input" top: "w" input_param { shape { dim: 3 dim: 4 } } }
        layer { name: "sc" type: "Scale" bottom: "data" bottom: "w" top: "sc"
                scale_param { bias_term: true } }
        layer { name: "sc0" type: "Scale" bottom: "data" bottom: "w" top: "sc0" }
        layer { name: "b" type: "Bias" bottom: "data" bottom: "w" top: "b" }''')

    shapes = param_shapes(net)

    assert shapes["sc"] == [(3, 4)]
    assert shapes["sc0"] == []
    assert shapes["b"] == []


def test_first_layer_of_a_name_counts():
    net = with_input([1, 2, 3, 3], '''
        layer { name: "x" type: "InnerProduct" bottom: "data" top: "a"
                inner_product_param { num_output: 4 } }
        layer { name: "x" type: "InnerProduct" bottom: "data" top: "b"
                inner_product_param { num_output: 5 } }''')

    assert param_shapes(net)["x"] == [(4, 18), (4,)]
