"""Caffe's coord_map in exact fractions: the §6.4 worked values on small nets built here, the
Crop offsets written in the peer FCN nets, and Table 2 of the DIGITS segmentation post."""
import re
from fractions import Fraction

import pytest
from google.protobuf import text_format

from digitslite.caffe import caffe_pb2
from digitslite.caffe.coordmap import (
    CoordMap,
    CoordMapError,
    coord_map_from_to,
    crop_report,
    fill_crop_offsets,
    layer_map,
    stride_table,
)
from digitslite.caffe.prototxt import read_net


def _net(*layers: str, inputs: tuple[str, ...] = ("data",)) -> caffe_pb2.NetParameter:
    net = caffe_pb2.NetParameter(name="probe")
    for name in inputs:
        net.layer.add(name=name, type="Input", top=[name]).input_param.shape.add(dim=[2, 1, 100, 100])
    for text in layers:
        text_format.Parse(text, net.layer.add())
    return net


def _conv_pool_deconv(conv: str = "kernel_size: 3", pool: int = 2, deconv: int = 2, deconv_pad: int = 0,
                      *extra: str) -> caffe_pb2.NetParameter:
    """§6.4: data -> Convolution -> MAX Pooling (kernel = stride = pool) -> Deconvolution(2D, D, pad)."""
    return _net(
        f'name: "conv" type: "Convolution" bottom: "data" top: "conv" '
        f'convolution_param {{ num_output: 1 {conv} }}',
        f'name: "pool" type: "Pooling" bottom: "conv" top: "pool" '
        f'pooling_param {{ kernel_size: {pool} stride: {pool} }}',
        f'name: "deconv" type: "Deconvolution" bottom: "pool" top: "deconv" '
        f'convolution_param {{ num_output: 1 kernel_size: {2 * deconv} stride: {deconv} pad: {deconv_pad} }}',
        *extra)


def _map(axis, scale, offset) -> CoordMap:
    return CoordMap(axis=axis, scale=(Fraction(scale),), offset=(Fraction(offset),))


# ---- §6.4 worked values

def test_layer_maps_of_the_default_net():
    conv, pool, deconv = _conv_pool_deconv().layer[1:]
    assert layer_map(conv) == _map(1, 1, -1)                 # (p − (k−1)/2)/s = (0 − 1)/1
    assert layer_map(pool) == _map(1, Fraction(1, 2), Fraction(-1, 4))     # (0 − 1/2)/2
    assert layer_map(deconv) == _map(1, 2, Fraction(3, 2))          # (k−1)/2 − p = 3/2


def test_default_net_maps_deconv_back_onto_data_exactly():
    net = _conv_pool_deconv()
    assert coord_map_from_to(net, "deconv", "data") == _map(1, 1, 0)
    # the deconv map is (2, 3/2); its inverse is (1/2, -3/4)
    assert coord_map_from_to(net, "deconv", "pool") == _map(1, Fraction(1, 2), Fraction(-3, 4))


def test_pool_and_deconv_of_four_give_crop_offset_one():
    net = _conv_pool_deconv(pool=4, deconv=4)
    assert coord_map_from_to(net, "deconv", "data") == _map(1, 1, -1)


def test_conv_pad_and_deconv_pad_shift_the_offset_in_opposite_directions():
    assert coord_map_from_to(_conv_pool_deconv("kernel_size: 3 pad: 2"), "deconv", "data") == _map(1, 1, -2)
    assert coord_map_from_to(_conv_pool_deconv(deconv_pad=2), "deconv", "data") == _map(1, 1, 2)
    assert coord_map_from_to(_conv_pool_deconv("kernel_size: 3 pad: 2", deconv_pad=2), "deconv", "data") \
        == _map(1, 1, 0)


def test_relu_and_one_by_one_conv_after_the_deconv_change_nothing():
    net = _conv_pool_deconv(
        "kernel_size: 3", 4, 4, 0,
        'name: "relu" type: "ReLU" bottom: "deconv" top: "deconv"',
        'name: "score" type: "Convolution" bottom: "deconv" top: "score" '
        'convolution_param { num_output: 1 kernel_size: 1 }')
    assert coord_map_from_to(net, "score", "data") == _map(1, 1, -1)


def test_two_bottom_convolution_maps_both_bottoms_alike():
    net = _net('name: "conv" type: "Convolution" bottom: "a" bottom: "b" top: "ca" top: "cb" '
               'convolution_param { num_output: 1 kernel_size: 5 stride: 2 pad: 1 }', inputs=("a", "b"))
    expected = _map(1, 2, 1)  # conv map (1/2, (1 − 2)/2 = −1/2); its inverse is (2, 1)
    assert coord_map_from_to(net, "ca", "a") == expected
    assert coord_map_from_to(net, "ca", "b") == expected


def test_anisotropic_kernel_equals_the_two_isotropic_cases():
    anisotropic = "kernel_h: 3 kernel_w: 5 stride_h: 1 stride_w: 2 pad_h: 0 pad_w: 10"
    mixed = coord_map_from_to(_conv_pool_deconv(anisotropic), "deconv", "data")
    rows = coord_map_from_to(_conv_pool_deconv("kernel_size: 3"), "deconv", "data")
    cols = coord_map_from_to(_conv_pool_deconv("kernel_size: 5 stride: 2 pad: 10"), "deconv", "data")
    assert mixed.axis == rows.axis == cols.axis == 1
    assert mixed.scale == (rows.scale[0], cols.scale[0])
    assert mixed.offset == (rows.offset[0], cols.offset[0])


def test_three_spatial_axes_with_per_axis_pad():
    net = _conv_pool_deconv("kernel_size: 3 pad: 0 pad: 1 pad: 2")
    found = coord_map_from_to(net, "deconv", "data")
    assert found.axis == 1 and found.scale == (Fraction(1),)
    assert found.offset == (Fraction(0), Fraction(-1), Fraction(-2))


def test_crop_of_a_crop_adds_its_offset():
    net = _conv_pool_deconv(
        "kernel_size: 3", 4, 4, 0,
        'name: "crop" type: "Crop" bottom: "deconv" bottom: "data" top: "crop" '
        'crop_param { axis: 2 offset: 3 }')
    assert coord_map_from_to(net, "crop", "data") == _map(1, 1, -1 + 3)


def test_crop_offsets_are_derived_or_left_as_written_with_the_reason():
    crop = 'name: "crop" type: "Crop" bottom: "deconv" bottom: "data" top: "crop"'
    assert crop_report(_conv_pool_deconv("kernel_size: 3", 4, 4, 0, crop))[0].derived == [1]
    for args, reason in [
        (("kernel_size: 3", 3, 2, 0), r"layer 'crop' \(Crop\).*scale 3/2.*scale 1"),
        (("kernel_size: 3", 2, 2, 10), r"offset 10.*negative"),
        (("kernel_size: 2", 2, 2, 0), r"offset -1/2.*not a whole number"),
    ]:
        (check,) = crop_report(_conv_pool_deconv(*args, crop))
        assert check.derived is None and check.ok   # Caffe runs it with the written offset: a warning
        assert re.search(reason, check.note), check.note


def test_inner_product_on_the_way_stops_the_walk():
    net = _net('name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
               'inner_product_param { num_output: 4 }')
    with pytest.raises(CoordMapError, match=r"layer 'ip' \(InnerProduct\).*no coordinate map"):
        coord_map_from_to(net, "ip", "data")


# ---- Crop offsets written in the peer nets (MANIFEST: all equal the derivation)

@pytest.mark.parametrize(("name", "offsets"), [
    ("fcn__voc-fcn32s__train.prototxt", {"score": [19]}),
    ("fcn__voc-fcn16s__train.prototxt", {"score_pool4c": [5], "score": [27]}),
    ("fcn__voc-fcn8s__train.prototxt", {"score_pool4c": [5], "score_pool3c": [9], "score": [31]}),
    ("fcn__voc-fcn8s__deploy.prototxt", {"score_pool4c": [5], "score_pool3c": [9], "score": [31]}),
    ("fcn__voc-fcn-alexnet__train.prototxt", {"score": [18]}),
    ("digits__semantic-segmentation__fcn_alexnet.prototxt", {"score": [18]}),
    ("digits__semantic-segmentation__fcn_alexnet.deploy.prototxt", {"score": [18]}),
])
def test_written_crop_offsets_equal_the_derived_ones(peer, name, offsets):
    report = crop_report(read_net(peer(name)))
    assert {check.layer: check.written for check in report} == offsets
    assert {check.layer: check.derived for check in report} == offsets
    assert all(check.ok for check in report)


def _without_offsets(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    for layer in net.layer:
        if layer.type == "Crop":
            layer.crop_param.ClearField("offset")
    return net


def test_missing_offsets_are_filled(peer):
    net = _without_offsets(read_net(peer("fcn__voc-fcn8s__deploy.prototxt")))
    assert [check.written for check in crop_report(net)] == [None, None, None]
    filled = fill_crop_offsets(net)
    written = [list(layer.crop_param.offset) for layer in filled.layer if layer.type == "Crop"]
    assert written == [[5], [9], [31]]
    assert not any(layer.crop_param.offset for layer in net.layer), "the input net is left unchanged"


def test_a_wrong_offset_is_flagged_and_corrected_only_when_asked(peer):
    net = read_net(peer("fcn__voc-fcn8s__deploy.prototxt"))
    score = next(layer for layer in net.layer if layer.name == "score")
    score.crop_param.offset[0] = 30
    flagged = [(check.layer, check.written, check.derived) for check in crop_report(net) if not check.ok]
    assert flagged == [("score", [30], [31])]
    kept = fill_crop_offsets(net)
    assert next(layer for layer in kept.layer if layer.name == "score").crop_param.offset == [30]
    corrected = fill_crop_offsets(net, correct=True)
    assert next(layer for layer in corrected.layer if layer.name == "score").crop_param.offset == [31]


def test_a_wrong_earlier_crop_does_not_spoil_the_later_ones(peer):
    # score_pool3c's walk passes through score_pool4c: later crops are derived as if it were aligned
    net = read_net(peer("fcn__voc-fcn8s__deploy.prototxt"))
    next(layer for layer in net.layer if layer.name == "score_pool4c").crop_param.offset[0] = 4
    report = crop_report(net)
    assert [(check.layer, check.written, check.derived, check.ok) for check in report] == [
        ("score_pool4c", [4], [5], False), ("score_pool3c", [9], [9], True), ("score", [31], [31], True)]


def test_a_missing_offset_that_should_be_zero_counts_as_right():
    net = _conv_pool_deconv("kernel_size: 3", 2, 2, 0,
                            'name: "crop" type: "Crop" bottom: "deconv" bottom: "data" top: "crop"')
    (check,) = crop_report(net)
    assert (check.written, check.derived, check.ok) == (None, [0], True)


# ---- Table 2 of "Image Segmentation Using DIGITS 5" (rows copied from peer_nets/MANIFEST.md)

TABLE_2 = [  # layer, stride, pad, kernel, scale, cumulative scale, offset, cumulative offset
    ("conv1", 4, 100, 11, "1/4", "1/4", "23.75", "18"),
    ("pool1", 2, 0, 3, "1/2", "1/8", "-0.5", "-77"),
    ("conv2", 1, 2, 5, "1", "1/8", "0", "-73"),
    ("pool2", 2, 0, 3, "1/2", "1/16", "-0.5", "-73"),
    ("conv3", 1, 1, 3, "1", "1/16", "0", "-65"),
    ("conv4", 1, 1, 3, "1", "1/16", "0", "-65"),
    ("conv5", 1, 1, 3, "1", "1/16", "0", "-65"),
    ("pool5", 2, 0, 3, "1/2", "1/32", "-0.5", "-65"),
    ("fc6", 1, 0, 6, "1", "1/32", "-2.5", "-49"),
    ("fc7", 1, 0, 1, "1", "1/32", "0", "31"),
    ("upscore", 32, 0, 63, "32", "1", "31", "31"),
]


def _row_tuple(row):
    return (row.layer, *row.stride, *row.pad, *row.kernel, *row.scale, *row.cumulative_scale, *row.offset,
            *row.cumulative_offset)


@pytest.mark.parametrize(("name", "suffix"), [("digits__semantic-segmentation__fcn_alexnet.prototxt", ""),
                                              ("digits__semantic-segmentation__fcn_alexnet.deploy.prototxt",
                                               "_21classes")])
def test_table_2_of_the_digits_post(peer, name, suffix):
    table = stride_table(read_net(peer(name)))
    expected = [(layer + suffix if layer == "upscore" else layer, stride, pad, kernel,
                 *map(Fraction, (scale, cum_scale, offset, cum_offset)))
                for layer, stride, pad, kernel, scale, cum_scale, offset, cum_offset in TABLE_2]
    # The blog leaves out score_fr, the 1x1 convolution between fc7 and upscore; it changes nothing.
    score_fr = ("score_fr" + suffix, 1, 0, 1, Fraction(1), Fraction(1, 32), Fraction(0), Fraction(31))
    assert [_row_tuple(row) for row in table.rows] == [*expected[:10], score_fr, expected[10]]
    assert [row.type for row in table.rows][-1] == "Deconvolution"
    assert table.crop_offset == [18]


def test_table_between_named_blobs_follows_the_fcn8s_reference(peer):
    net = read_net(peer("fcn__voc-fcn8s__deploy.prototxt"))
    # fcn-reference §c: cumulative offset of data in pool5 coordinates is 2.609375 at scale 1/32
    to_pool5 = stride_table(net, "data", "pool5")
    assert to_pool5.rows[0].cumulative_offset == (Fraction("2.609375"),)
    assert to_pool5.rows[-1].cumulative_scale == (Fraction(1, 32),)
    assert to_pool5.crop_offset is None
    to_upscore2 = stride_table(net, "data", "upscore2")
    assert to_upscore2.rows[0].cumulative_offset == (Fraction("0.71875"),)
    assert stride_table(net).crop_offset == [31]


def test_table_refuses_a_path_through_an_inner_product(peer):
    net = read_net(peer("caffe__bvlc_alexnet__deploy.prototxt"))
    with pytest.raises(CoordMapError, match=r"layer 'fc6' \(InnerProduct\) lies on the path"):
        stride_table(net, "data", "fc7")
    with pytest.raises(CoordMapError, match="no Crop layer"):
        stride_table(net)
