"""Static shape inference: per-layer rules (caffe-spec §2.6, §7 vectors) and whole peer nets.

Every expected shape is derived by hand from Caffe's formulas:
conv  out = (in + 2p − (d(k−1)+1)) // s + 1
pool  out = ceil((in + 2p − k) / s) + 1, minus 1 when pad > 0 and (out − 1)·s ≥ in + p
deconv out = s(in − 1) + d(k−1) + 1 − 2p
"""
import pytest
from google.protobuf import text_format

from digitslite.caffe import caffe_pb2
from digitslite.caffe.shapes import ShapeError, blob_shapes, infer_shapes

Shape = tuple[int, ...]


def _tops(layer_text: str, *bottoms: Shape, tops: tuple[str, ...] = ("out",)) -> list[Shape]:
    """Top shapes of one layer fed by Input blobs of the given shapes."""
    net = caffe_pb2.NetParameter(name="probe")
    for index, shape in enumerate(bottoms):
        net.layer.add(name=f"in{index}", type="Input", top=[f"b{index}"]).input_param.shape.add(dim=shape)
    layer = net.layer.add()
    text_format.Parse(layer_text, layer)
    layer.name = layer.name or "probe"
    layer.bottom.extend(f"b{index}" for index in range(len(bottoms)))
    if not layer.top:
        layer.top.extend(tops)
    return infer_shapes(net)[-1].tops


def _refused(layer_text: str, *bottoms: Shape, match: str, tops: tuple[str, ...] = ("out",)) -> str:
    with pytest.raises(ShapeError, match=match) as caught:
        _tops(layer_text, *bottoms, tops=tops)
    return str(caught.value)


# ---- Pooling (caffe-spec §7.1 and the ceil / clip rules)

@pytest.mark.parametrize(("param", "expected"), [
    ("kernel_size: 3 stride: 2", (2, 3, 3, 2)),                  # ceil(3/2)+1=3, ceil(2/2)+1=2
    ("kernel_size: 3 stride: 2 pad: 1 pool: AVE", (2, 3, 4, 3)),  # ceil(5/2)+1=4, ceil(4/2)+1=3
    ("global_pooling: true pool: AVE", (2, 3, 1, 1)),
    ("kernel_size: 3 stride: 2 round_mode: FLOOR", (2, 3, 2, 2)),  # floor(3/2)+1=2, floor(2/2)+1=2
])
def test_pooling_setup_vectors(param, expected):
    assert _tops(f'type: "Pooling" pooling_param {{ {param} }}', (2, 3, 6, 5)) == [expected]


def test_pooling_rectangular_kernel_and_padded_max():
    # RectHigh: kernel 3x2 stride 1 on 6x6 -> 4x5; MaxPadded: 3x3, k3 s2 p2 -> ceil(4/2)+1 = 3, no clip
    assert _tops('type: "Pooling" pooling_param { kernel_h: 3 kernel_w: 2 stride: 1 }', (2, 2, 6, 6)) \
        == [(2, 2, 4, 5)]
    assert _tops('type: "Pooling" pooling_param { kernel_size: 3 stride: 2 pad: 2 }', (1, 1, 3, 3)) \
        == [(1, 1, 3, 3)]


def test_pooling_clips_the_last_window_only_when_padded():
    # in 5, k 2, s 2, pad 1: ceil(5/2)+1 = 4, and (4-1)*2 = 6 >= 5+1 -> clipped to 3
    assert _tops('type: "Pooling" pooling_param { kernel_size: 2 stride: 2 pad: 1 }', (1, 1, 5, 5)) \
        == [(1, 1, 3, 3)]
    # in 5, k 1, s 3, pad 0: ceil(4/3)+1 = 3; the clip would give 2 but pad 0 never clips (spec §2.6)
    assert _tops('type: "Pooling" pooling_param { kernel_size: 1 stride: 3 }', (1, 1, 5, 5)) \
        == [(1, 1, 3, 3)]


def test_max_pooling_may_have_a_mask_top():
    assert _tops('type: "Pooling" pooling_param { kernel_size: 2 stride: 1 }', (2, 2, 3, 5),
                 tops=("out", "mask")) == [(2, 2, 2, 4), (2, 2, 2, 4)]


def test_pooling_refusals():
    _refused('type: "Pooling" pooling_param { kernel_size: 3 pad: 3 }', (1, 1, 8, 8),
             match="pad .* must be smaller than kernel")
    _refused('type: "Pooling" pooling_param { global_pooling: true kernel_size: 2 }', (1, 1, 8, 8),
             match="global_pooling")
    _refused('type: "Pooling" pooling_param { stride: 2 }', (1, 1, 8, 8), match="kernel size is not set")
    _refused('type: "Pooling" pooling_param { kernel_size: 2 }', (1, 8, 8), match="4-axis")


# ---- Convolution / Deconvolution (§7.2, §7.3)

def test_convolution_vectors():
    conv = 'type: "Convolution" convolution_param { num_output: 4 kernel_size: 3 stride: 2 }'
    # (6-3)//2+1 = 2, (4-3)//2+1 = 1; two bottoms give two tops of the same shape
    assert _tops(conv, (2, 3, 6, 4), (2, 3, 6, 4), tops=("a", "b")) == [(2, 4, 2, 1), (2, 4, 2, 1)]
    grouped = 'type: "Convolution" convolution_param { num_output: 3 group: 3 kernel_size: 3 stride: 2 }'
    assert _tops(grouped, (2, 3, 6, 4)) == [(2, 3, 2, 1)]
    # dilation 2: extent 5 -> 8-5+1 = 4, 7-5+1 = 3
    dilated = 'type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 dilation: 2 }'
    assert _tops(dilated, (2, 3, 8, 7)) == [(2, 2, 4, 3)]
    # 3-D: (5-3)//2+1 = 2, (6-3)//2+1 = 2, (4-3)//2+1 = 1
    assert _tops(conv, (2, 3, 5, 6, 4)) == [(2, 4, 2, 2, 1)]
    # axis 3 on (2,3,6,4): no spatial axes left, a per-position inner product over 4 channels
    assert _tops('type: "Convolution" convolution_param { num_output: 3 axis: 3 }', (2, 3, 6, 4)) \
        == [(2, 3, 6, 3)]
    # Sobel pieces: kernel 3x1 stride 2x1 -> (6-3)//2+1 = 2, (4-1)//1+1 = 4
    sobel = ('type: "Convolution" convolution_param { num_output: 1 kernel_h: 3 kernel_w: 1 '
             'stride_h: 2 stride_w: 1 }')
    assert _tops(sobel, (2, 3, 6, 4)) == [(2, 1, 2, 4)]


def test_deconvolution_vectors():
    deconv = 'type: "Deconvolution" convolution_param { num_output: 4 kernel_size: 3 stride: 2 }'
    assert _tops(deconv, (2, 3, 6, 4)) == [(2, 4, 13, 9)]   # 2*5+3 = 13, 2*3+3 = 9
    grouped = 'type: "Deconvolution" convolution_param { num_output: 3 group: 3 kernel_size: 3 stride: 2 }'
    assert _tops(grouped, (2, 3, 6, 4)) == [(2, 3, 13, 9)]
    padded = 'type: "Deconvolution" convolution_param { num_output: 1 kernel_size: 4 stride: 2 pad: 1 }'
    assert _tops(padded, (1, 1, 16, 16)) == [(1, 1, 32, 32)]  # 2*15+4-2 = 32


def test_convolution_refusals():
    _refused('type: "Convolution" convolution_param { kernel_size: 3 }', (1, 3, 8, 8),
             match="num_output is not set")
    _refused('type: "Convolution" convolution_param { num_output: 4 group: 2 kernel_size: 3 }', (1, 3, 8, 8),
             match="group 2 must divide")
    _refused('type: "Convolution" convolution_param { num_output: 4 kernel_size: 9 }', (1, 3, 8, 8),
             match="gives no output")
    _refused('type: "Convolution" convolution_param { num_output: 4 kernel_size: 3 kernel_h: 3 kernel_w: 3 }',
             (1, 3, 8, 8), match="not both")
    _refused('type: "Convolution" convolution_param { num_output: 4 kernel_size: 3 kernel_size: 3 '
             'kernel_size: 3 }', (1, 3, 8, 8), match="3 values for 2 spatial axes")


# ---- Crop (§7.5)

@pytest.mark.parametrize(("param", "reference", "expected"), [
    ("axis: 0", (2, 3, 4, 2), (2, 3, 4, 2)),
    ("", (2, 3, 4, 2), (2, 4, 4, 2)),
    ("axis: -1", (2, 3, 4, 2), (2, 4, 5, 2)),
    ("", (2, 5, 4, 2), (2, 4, 4, 2)),
    ("axis: 0 offset: 0 offset: 1 offset: 1 offset: 2", (2, 3, 4, 2), (2, 3, 4, 2)),
    ("axis: 2 offset: 1 offset: 2", (2, 3, 4, 2), (2, 4, 4, 2)),
])
def test_crop_vectors(param, reference, expected):
    assert _tops(f'type: "Crop" crop_param {{ {param} }}', (2, 4, 5, 4), reference) == [expected]


def test_crop_five_axes():
    assert _tops('type: "Crop" crop_param { axis: 2 offset: 1 offset: 2 offset: 0 }',
                 (2, 4, 5, 4, 2), (2, 3, 4, 2, 1)) == [(2, 4, 4, 2, 1)]


def test_crop_refuses_a_larger_reference_or_too_large_offset():
    message = _refused('type: "Crop"', (2, 4, 5, 4), (2, 4, 6, 4), match="reference is larger")
    assert "(2,4,6,4)" in message
    _refused('type: "Crop" crop_param { offset: 2 }', (2, 4, 5, 4), (2, 4, 4, 2), match="offset 2")
    _refused('type: "Crop" crop_param { offset: 1 offset: 1 offset: 1 }', (2, 4, 5, 4), (2, 4, 4, 2),
             match="3 values for 2 cropped axes")


# ---- Structural layers

def test_concat_and_slice_vectors():
    assert _tops('type: "Concat" concat_param { axis: 0 }', (2, 3, 6, 5), (5, 3, 6, 5)) == [(7, 3, 6, 5)]
    assert _tops('type: "Concat"', (2, 3, 6, 5), (2, 5, 6, 5)) == [(2, 8, 6, 5)]
    assert _tops('type: "Concat" concat_param { axis: -3 }', (2, 3, 6, 5), (2, 5, 6, 5)) == [(2, 8, 6, 5)]
    assert _tops('type: "Concat" concat_param { concat_dim: 0 }', (2, 3), (4, 3)) == [(6, 3)]
    _refused('type: "Concat"', (2, 3, 6, 5), (2, 5, 7, 5), match="differ only on axis 1")
    assert _tops('type: "Slice" slice_param { axis: 0 }', (6, 12, 2, 3), tops=("a", "b", "c")) \
        == [(2, 12, 2, 3)] * 3
    assert _tops('type: "Slice" slice_param { slice_point: 3 }', (6, 12, 2, 3), tops=("a", "b")) \
        == [(6, 3, 2, 3), (6, 9, 2, 3)]
    _refused('type: "Slice"', (6, 12, 2, 3), tops=("a", "b", "c", "d", "e"), match="does not split evenly")


@pytest.mark.parametrize(("param", "expected"), [
    ("", (2, 90)), ("axis: 2", (2, 3, 30)), ("end_axis: -2", (2, 18, 5)), ("axis: 0 end_axis: -2", (36, 5)),
])
def test_flatten_vectors(param, expected):
    assert _tops(f'type: "Flatten" flatten_param {{ {param} }}', (2, 3, 6, 5)) == [expected]


@pytest.mark.parametrize(("param", "expected"), [
    ("shape { dim: 0 dim: -1 dim: 1 dim: 1 }", (2, 90, 1, 1)),
    ("shape { dim: 0 dim: 0 dim: 0 dim: 0 }", (2, 3, 6, 5)),
    ("shape { dim: 0 dim: 3 dim: 10 dim: -1 }", (2, 3, 10, 3)),
    ("axis: 1 shape { dim: 3 dim: 10 dim: -1 }", (2, 3, 10, 3)),
    ("axis: 0 num_axes: 0 shape { dim: 1 dim: 1 dim: 1 }", (1, 1, 1, 2, 3, 6, 5)),
    ("axis: 2 num_axes: 0 shape { dim: 1 dim: 1 dim: 1 }", (2, 3, 1, 1, 1, 6, 5)),
    ("axis: -1 num_axes: 0 shape { dim: 1 dim: 1 dim: 1 }", (2, 3, 6, 5, 1, 1, 1)),
    ("axis: 1 num_axes: 2 shape { dim: -1 }", (2, 18, 5)),
])
def test_reshape_vectors(param, expected):
    assert _tops(f'type: "Reshape" reshape_param {{ {param} }}', (2, 3, 6, 5)) == [expected]


def test_reshape_refuses_a_different_count():
    _refused('type: "Reshape" reshape_param { shape { dim: 7 dim: -1 } }', (2, 3, 6, 5),
             match="do not divide by 7")
    _refused('type: "Reshape" reshape_param { shape { dim: 2 dim: 3 } }', (2, 3, 6, 5), match="must be equal")


def test_eltwise_split_silence():
    assert _tops('type: "Eltwise"', (2, 3, 4, 5), (2, 3, 4, 5), (2, 3, 4, 5)) == [(2, 3, 4, 5)]
    _refused('type: "Eltwise"', (2, 3, 4, 5), (2, 3, 4, 6), match="same shape")
    _refused('type: "Eltwise" eltwise_param { operation: MAX coeff: 1 coeff: 2 }', (1, 2), (1, 2),
             match="only allowed with operation SUM")
    assert _tops('type: "Split"', (2, 3), tops=("a", "b", "c")) == [(2, 3)] * 3
    assert _tops('type: "Silence"', (2, 3), tops=()) == []


def test_inner_product_flattens_from_its_axis():
    assert _tops('type: "InnerProduct" inner_product_param { num_output: 10 }', (2, 3, 4, 5)) == [(2, 10)]
    assert _tops('type: "InnerProduct" inner_product_param { num_output: 10 axis: 2 }', (2, 3, 4, 5)) \
        == [(2, 3, 10)]
    _refused('type: "InnerProduct"', (2, 3, 4, 5), match="num_output is not set")


@pytest.mark.parametrize(("param", "expected"), [
    ("", (10, 1, 1, 1)),
    ("out_max_val: true", (10, 2, 1, 1)),
    ("top_k: 5", (10, 1, 5, 1)),
    ("axis: 0", (1, 10, 20, 20)),
    ("axis: -2", (10, 10, 1, 20)),
    ("axis: 2 out_max_val: true", (10, 10, 1, 20)),
])
def test_argmax_vectors(param, expected):
    assert _tops(f'type: "ArgMax" argmax_param {{ {param} }}', (10, 10, 20, 20)) == [expected]


@pytest.mark.parametrize("layer_type", ["ReLU", "Sigmoid", "TanH", "ELU", "PReLU", "Dropout", "LRN",
                                        "BatchNorm", "Scale", "Bias", "Power", "Softmax"])
def test_shape_preserving_layers(layer_type):
    assert _tops(f'type: "{layer_type}"', (2, 3, 4, 5)) == [(2, 3, 4, 5)]


def test_scale_with_a_second_bottom_must_fit_its_axes():
    assert _tops('type: "Scale"', (2, 3, 4, 5), (3, 4)) == [(2, 3, 4, 5)]
    assert _tops('type: "Bias" bias_param { axis: 0 }', (2, 3, 4, 5), (2, 3)) == [(2, 3, 4, 5)]
    _refused('type: "Scale"', (2, 3, 4, 5), (4, 5), match="must equal axes 1")


# ---- Losses and metrics

def test_loss_and_accuracy_tops():
    assert _tops('type: "Accuracy"', (100, 10), (100,), tops=("acc", "per_class")) == [(), (10,)]
    assert _tops('type: "Accuracy"', (2, 10, 4, 5), (2, 4, 5), tops=("acc",)) == [()]
    assert _tops('type: "SoftmaxWithLoss"', (10, 5, 2, 3), (10, 1, 2, 3), tops=("loss", "prob")) \
        == [(), (10, 5, 2, 3)]
    assert _tops('type: "SoftmaxWithLoss"', (10, 5, 2, 3), (10, 1, 2, 3), tops=()) == []
    assert _tops('type: "EuclideanLoss"', (10, 5, 1, 1), (10, 5, 1, 1)) == [()]
    assert _tops('type: "SigmoidCrossEntropyLoss"', (10, 5, 1, 1), (10, 5, 1, 1)) == [()]


def test_loss_refusals():
    # 10*2*3 = 60 positions, but the labels hold 10*1*2*2 = 40
    _refused('type: "SoftmaxWithLoss"', (10, 5, 2, 3), (10, 1, 2, 2), match="hold 40 values .* 60 positions")
    _refused('type: "EuclideanLoss"', (10, 5), (9, 5), match="share their first axis")
    _refused('type: "Accuracy" accuracy_param { top_k: 11 }', (100, 10), (100,), match="top_k 11 exceeds")


def test_a_top_count_the_layer_does_not_make_is_refused():
    _refused('type: "ReLU"', (2, 3), tops=("a", "b"), match="lists 2 top.* makes 1")


# ---- Net inputs

_DATA_NET = """
name: "seg"
layer { name: "data" type: "Data" top: "data" data_param { batch_size: 4 } }
layer { name: "label" type: "Data" top: "label" data_param { batch_size: 4 } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "conv" bottom: "label" top: "loss" }
"""


def _parse(text: str) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


def test_data_layers_need_a_shape_from_the_caller():
    with pytest.raises(ShapeError, match=r"layer 'data' \(Data\).*--input-shape"):
        infer_shapes(_parse(_DATA_NET))


def test_data_layer_shape_takes_n_from_batch_size_and_derives_the_label():
    shapes = blob_shapes(_parse(_DATA_NET), {"data": (3, 32, 48)})
    assert shapes == {"data": (4, 3, 32, 48), "label": (4, 1, 32, 48), "conv": (4, 2, 32, 48), "loss": ()}
    assert blob_shapes(_parse(_DATA_NET), {"data": (2, 3, 32, 48)})["label"] == (2, 1, 32, 48)


def test_data_layer_crop_and_classification_label():
    net = _parse('layer { name: "d" type: "Data" top: "data" top: "label" data_param { batch_size: 8 } '
                 'transform_param { crop_size: 227 } }')
    assert blob_shapes(net, {"data": (3, 256, 256)}) == {"data": (8, 3, 227, 227), "label": (8,)}
    with pytest.raises(ShapeError, match="crop_size 227 is larger"):
        blob_shapes(net, {"data": (3, 200, 256)})


def test_input_shapes_override_input_layers_and_must_name_an_input():
    net = _parse('layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 '
                 'dim: 8 } } }')
    assert blob_shapes(net) == {"data": (1, 3, 8, 8)}
    assert blob_shapes(net, {"data": [2, 3, 4, 4]}) == {"data": (2, 3, 4, 4)}
    with pytest.raises(ShapeError, match=r"'dat', which no Input or data layer .* inputs are: data"):
        blob_shapes(net, {"dat": (1, 3, 8, 8)})


def test_unknown_bottom_is_refused():
    net = _parse('layer { name: "r" type: "ReLU" bottom: "nowhere" top: "r" }')
    with pytest.raises(ShapeError, match="bottom 'nowhere' is not produced"):
        infer_shapes(net)


def test_layer_shapes_entries_follow_the_net():
    net = _parse('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 6 } } }'
                 'layer { name: "s" type: "Slice" bottom: "x" top: "a" top: "b" }')
    entries = infer_shapes(net)
    assert [(e.name, e.type, e.bottoms, e.tops) for e in entries] == [
        ("in", "Input", [], [(2, 6)]), ("s", "Slice", [(2, 6)], [(2, 3), (2, 3)])]
