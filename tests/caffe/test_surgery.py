"""Net surgery on small hand-made nets: coercion, class expansion, bilinear weights, errors."""
import numpy as np
import pytest
from google.protobuf import text_format

from digitslite.caffe import caffe_pb2
from digitslite.caffe.caffemodel import WeightsError
from digitslite.caffe.surgery import SurgeryError, bilinear_kernel, bilinear_weights, transplant

INPUT = '''layer { name: "data" type: "Input" top: "data"
                input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } } }
'''

SRC = INPUT + '''
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 4 } }
layer { name: "score" type: "InnerProduct" bottom: "fc" top: "score" inner_product_param { num_output: 3 } }
layer { name: "old" type: "InnerProduct" bottom: "score" top: "old" inner_product_param { num_output: 2 } }
'''

DST = INPUT + '''
layer { name: "fc" type: "Convolution" bottom: "data" top: "fc"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "fc" top: "fc" }
layer { name: "score" type: "Convolution" bottom: "fc" top: "score"
        convolution_param { num_output: 5 kernel_size: 1 } }
layer { name: "up" type: "Deconvolution" bottom: "score" top: "up"
        convolution_param { num_output: 5 group: 5 bias_term: false kernel_size: 4 stride: 2 } }
layer { name: "new" type: "Convolution" bottom: "up" top: "new"
        convolution_param { num_output: 2 kernel_size: 1 } }
'''


def net_from(text: str) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


def numbered(*shape: int) -> np.ndarray:
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape) + 1


@pytest.fixture
def src_weights() -> dict[str, list[np.ndarray]]:
    return {
        "fc": [numbered(4, 18), numbered(4)],
        "score": [numbered(3, 4) * 10, numbered(3) * 10],
        "old": [numbered(2, 3), numbered(2)],
    }


def test_bilinear_kernel_of_size_4_by_hand():
    # f = ceil(4/2) = 2, c = 3/4: profile 1-|x/2-3/4| = 0.25, 0.75, 0.75, 0.25
    expected_rows = [
        [0.0625, 0.1875, 0.1875, 0.0625],
        [0.1875, 0.5625, 0.5625, 0.1875],
        [0.1875, 0.5625, 0.5625, 0.1875],
        [0.0625, 0.1875, 0.1875, 0.0625],
    ]
    np.testing.assert_array_equal(bilinear_kernel(4), expected_rows)


def test_bilinear_kernels_of_odd_sizes_by_hand():
    # K=3: f=2, c=1/2 -> 0.5, 1, 0.5; K=5: f=3, c=2/3 -> 1/3, 2/3, 1, 2/3, 1/3 (caffe-spec §3)
    np.testing.assert_array_equal(bilinear_kernel(3)[1], [0.5, 1.0, 0.5])
    np.testing.assert_allclose(bilinear_kernel(5)[2], [1 / 3, 2 / 3, 1, 2 / 3, 1 / 3], rtol=1e-6)
    # K=63 (FCN-AlexNet upscore): f=32, centre 31; fall-off 1/32 per pixel, sum f^2 = 1024
    kernel = bilinear_kernel(63)
    assert kernel[31, 31] == 1.0
    assert kernel[31, 30] == 31 / 32
    assert kernel[0, 0] == (1 / 32) ** 2
    assert kernel.sum() == pytest.approx(1024.0)


def test_grouped_bilinear_weights_repeat_the_kernel_per_channel():
    weights = bilinear_weights((3, 1, 4, 4))

    for channel in range(3):
        np.testing.assert_array_equal(weights[channel, 0], bilinear_kernel(4))


def test_ungrouped_bilinear_weights_fill_only_the_diagonal():
    weights = bilinear_weights((3, 3, 4, 4))

    for out in range(3):
        for inp in range(3):
            expected = bilinear_kernel(4) if out == inp else np.zeros((4, 4))
            np.testing.assert_array_equal(weights[out, inp], expected)


def test_bilinear_weights_refuse_mixed_channels_and_non_square_kernels():
    with pytest.raises(SurgeryError, match=r"'up'.*\(3, 2, 4, 4\)"):
        bilinear_weights((3, 2, 4, 4), "up")
    with pytest.raises(SurgeryError, match=r"\(3, 1, 4, 3\)"):
        bilinear_weights((3, 1, 4, 3), "up")


def test_transplant_coerces_expands_interpolates_and_reports(src_weights):
    surgery = transplant(net_from(SRC), src_weights, net_from(DST), expand_score=["score"])

    report = [action.as_dict() for action in surgery.actions]
    assert report == [
        {"layer": "fc", "action": "coerced", "src_shape": [4, 18], "dst_shape": [4, 2, 3, 3]},
        {"layer": "score", "action": "expanded", "src_shape": [3, 4], "dst_shape": [5, 4, 1, 1]},
        {"layer": "up", "action": "interpolated", "src_shape": None, "dst_shape": [5, 1, 4, 4]},
        {"layer": "new", "action": "left-initialised", "src_shape": None, "dst_shape": [2, 5, 1, 1]},
        {"layer": "old", "action": "dropped", "src_shape": [2, 3], "dst_shape": None},
    ]
    fc_weight, fc_bias = surgery.weights["fc"]
    # row-major: output 1, channel 0, row 2, column 1 is flat input index 0*9 + 2*3 + 1 = 7 of row 1
    assert fc_weight[1, 0, 2, 1] == src_weights["fc"][0][1, 7]
    np.testing.assert_array_equal(fc_weight.reshape(4, 18), src_weights["fc"][0])
    np.testing.assert_array_equal(fc_bias, src_weights["fc"][1])
    score_weight, score_bias = surgery.weights["score"]
    np.testing.assert_array_equal(score_weight[:3, :, 0, 0], src_weights["score"][0])
    np.testing.assert_array_equal(score_weight[3:], 0)
    np.testing.assert_array_equal(score_bias, [10, 20, 30, 0, 0])
    np.testing.assert_array_equal(surgery.weights["up"][0][4, 0], bilinear_kernel(4))
    assert "new" not in surgery.weights


def test_expanding_to_fewer_classes_keeps_the_first_ones(src_weights):
    dst = net_from(DST.replace("num_output: 5 kernel_size: 1", "num_output: 2 kernel_size: 1")
                   .replace("num_output: 5 group: 5", "num_output: 2 group: 2"))

    surgery = transplant(net_from(SRC), src_weights, dst, expand_score=["score"])

    np.testing.assert_array_equal(surgery.weights["score"][1], [10, 20])
    np.testing.assert_array_equal(surgery.weights["score"][0][:, :, 0, 0], src_weights["score"][0][:2])


def test_class_count_change_without_expand_score_names_the_fix(src_weights):
    with pytest.raises(SurgeryError) as caught:
        transplant(net_from(SRC), src_weights, net_from(DST))

    message = str(caught.value)
    for part in ("'score'", "(3, 4)", "(5, 4, 1, 1)", "--expand-score score"):
        assert part in message


def test_uncoercible_shape_names_layer_and_both_shapes(src_weights):
    dst = net_from(DST.replace("num_output: 4 kernel_size: 3", "num_output: 4 kernel_size: 2"))

    with pytest.raises(SurgeryError) as caught:
        transplant(net_from(SRC), src_weights, dst, expand_score=["score"])

    message = str(caught.value)
    for part in ("'fc'", "(4, 18)", "(4, 2, 2, 2)", "rename"):
        assert part in message


def test_deconvolution_with_source_weights_is_copied_unless_interpolated():
    net = net_from(INPUT + '''
        layer { name: "up" type: "Deconvolution" bottom: "data" top: "up"
                convolution_param { num_output: 2 kernel_size: 4 stride: 2 } }''')
    trained = {"up": [numbered(2, 2, 4, 4), numbered(2)]}

    copied = transplant(net, trained, net)
    interpolated = transplant(net, trained, net, interp=["up"])

    assert [a.action for a in copied.actions] == ["copied"]
    np.testing.assert_array_equal(copied.weights["up"][0], trained["up"][0])
    assert [a.action for a in interpolated.actions] == ["interpolated"]
    weight, bias = interpolated.weights["up"]
    np.testing.assert_array_equal(weight[1, 1], bilinear_kernel(4))
    np.testing.assert_array_equal(weight[0, 1], 0)
    np.testing.assert_array_equal(bias, 0)


def test_deconvolution_of_another_shape_suggests_interp():
    src = net_from(INPUT + '''
        layer { name: "up" type: "Deconvolution" bottom: "data" top: "up"
                convolution_param { num_output: 2 kernel_size: 4 stride: 2 bias_term: false } }''')
    dst = net_from(INPUT + '''
        layer { name: "up" type: "Deconvolution" bottom: "data" top: "up"
                convolution_param { num_output: 2 kernel_size: 6 stride: 3 bias_term: false } }''')

    with pytest.raises(SurgeryError, match=r"\(2, 2, 4, 4\).*\(2, 2, 6, 6\).*--interp up"):
        transplant(src, {"up": [numbered(2, 2, 4, 4)]}, dst)


def test_blob_count_mismatch_is_refused(src_weights):
    dst = net_from(DST.replace("kernel_size: 3", "kernel_size: 3 bias_term: false"))

    with pytest.raises(SurgeryError, match=r"'fc' has 1 parameter blobs but the source layer has 2"):
        transplant(net_from(SRC), src_weights, dst, expand_score=["score"])


def test_options_must_name_destination_layers_with_parameters(src_weights):
    with pytest.raises(SurgeryError, match=r"--interp names 'relu'"):
        transplant(net_from(SRC), src_weights, net_from(DST), interp=["relu"])
    with pytest.raises(SurgeryError, match=r"--expand-score names 'nope'"):
        transplant(net_from(SRC), src_weights, net_from(DST), expand_score=["nope"])


def test_source_weights_must_fit_the_source_net(src_weights):
    src_weights["fc"] = [numbered(4, 17), numbered(4)]

    with pytest.raises(WeightsError, match=r"'fc'.*\(4, 17\).*\(4, 18\)"):
        transplant(net_from(SRC), src_weights, net_from(DST), expand_score=["score"])
