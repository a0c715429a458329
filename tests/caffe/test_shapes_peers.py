"""Shape inference over the real peer nets, against shapes derived by hand from Caffe's formulas
(conv (in+2p−k)//s+1, pool ceil((in+2p−k)/s)+1, deconv s(in−1)+k−2p, crop = reference size)."""
import pytest

from digitslite.caffe.prototxt import filter_net, read_net, read_net_located
from digitslite.caffe.shapes import ShapeError, blob_shapes


def test_voc_fcn8s_deploy_at_500x500(peer):
    shapes = blob_shapes(read_net(peer("fcn__voc-fcn8s__deploy.prototxt")))
    # conv1_1 pad 100, k3: 500+200-3+1 = 698; conv1_2 pad 1 keeps 698
    # pool1 ceil((698-2)/2)+1 = 349; pool2 ceil(347/2)+1 = 175; pool3 ceil(173/2)+1 = 88
    # pool4 ceil(86/2)+1 = 44; pool5 ceil(42/2)+1 = 22; fc6 k7: 22-7+1 = 16; fc7, score_fr k1: 16
    # upscore2 2*(16-1)+4 = 34; score_pool4 (1x1 on pool4) 44 cropped to 34
    # upscore_pool4 2*(34-1)+4 = 70; score_pool3 88 cropped to 70; upscore8 8*(70-1)+16 = 568; score 500
    expected = {
        "data": (1, 3, 500, 500), "conv1_1": (1, 64, 698, 698), "conv1_2": (1, 64, 698, 698),
        "pool1": (1, 64, 349, 349), "pool2": (1, 128, 175, 175), "pool3": (1, 256, 88, 88),
        "pool4": (1, 512, 44, 44), "pool5": (1, 512, 22, 22), "fc6": (1, 4096, 16, 16),
        "fc7": (1, 4096, 16, 16), "score_fr": (1, 21, 16, 16), "upscore2": (1, 21, 34, 34),
        "score_pool4": (1, 21, 44, 44), "score_pool4c": (1, 21, 34, 34), "fuse_pool4": (1, 21, 34, 34),
        "upscore_pool4": (1, 21, 70, 70), "score_pool3c": (1, 21, 70, 70), "fuse_pool3": (1, 21, 70, 70),
        "upscore8": (1, 21, 568, 568), "score": (1, 21, 500, 500),
    }
    assert {name: shapes[name] for name in expected} == expected


def test_voc_fcn8s_deploy_at_375x500_through_input_shapes(peer):
    shapes = blob_shapes(read_net(peer("fcn__voc-fcn8s__deploy.prototxt")), {"data": (1, 3, 375, 500)})
    # H: conv1 573; pools ceil(571/2)+1 = 287, ceil(285/2)+1 = 144, 72, 36, 18; fc6 12;
    # upscore2 2*11+4 = 26; upscore_pool4 2*25+4 = 54; upscore8 8*53+16 = 440 -> crop 375
    assert shapes["pool5"] == (1, 512, 18, 22)
    assert shapes["fc6"] == (1, 4096, 12, 16)
    assert shapes["upscore8"] == (1, 21, 440, 568)
    assert shapes["score"] == (1, 21, 375, 500)


def test_bvlc_alexnet_deploy(peer):
    shapes = blob_shapes(read_net(peer("caffe__bvlc_alexnet__deploy.prototxt")))
    # conv1 (227-11)//4+1 = 55; pool1 ceil(52/2)+1 = 27; conv2 pad 2 k5 keeps 27; pool2 ceil(24/2)+1 = 13
    # conv3..5 pad 1 k3 keep 13; pool5 ceil(10/2)+1 = 6; fc6/fc7 4096, fc8 and prob 1000
    expected = {
        "conv1": (10, 96, 55, 55), "pool1": (10, 96, 27, 27), "conv2": (10, 256, 27, 27),
        "pool2": (10, 256, 13, 13), "conv3": (10, 384, 13, 13), "conv4": (10, 384, 13, 13),
        "conv5": (10, 256, 13, 13), "pool5": (10, 256, 6, 6), "fc6": (10, 4096), "fc7": (10, 4096),
        "fc8": (10, 1000), "prob": (10, 1000),
    }
    assert {name: shapes[name] for name in expected} == expected


def test_lenet(peer):
    shapes = blob_shapes(read_net(peer("caffe__mnist__lenet.prototxt")))
    # conv1 28-5+1 = 24; pool1 12; conv2 12-5+1 = 8; pool2 4; ip1 500; ip2 10
    assert shapes == {"data": (64, 1, 28, 28), "conv1": (64, 20, 24, 24), "pool1": (64, 20, 12, 12),
                      "conv2": (64, 50, 8, 8), "pool2": (64, 50, 4, 4), "ip1": (64, 500), "ip2": (64, 10),
                      "prob": (64, 10)}


def test_fcn_alexnet_deploy_from_legacy_input(peer):
    shapes = blob_shapes(read_net(peer("digits__semantic-segmentation__fcn_alexnet.deploy.prototxt")))
    # 500x356, conv1 k11 s4 pad 100: (700-11)//4+1 = 173, (556-11)//4+1 = 137
    # pool1 ceil(170/2)+1 = 86, ceil(134/2)+1 = 68; pool2 ceil(83/2)+1 = 43, ceil(65/2)+1 = 34
    # pool5 ceil(40/2)+1 = 21, ceil(31/2)+1 = 17; fc6 k6: 16, 12; upscore 32*15+63 = 543, 32*11+63 = 415
    assert shapes["conv1"] == (1, 96, 173, 137)
    assert shapes["pool1"] == (1, 96, 86, 68)
    assert shapes["pool2"] == (1, 256, 43, 34)
    assert shapes["pool5"] == (1, 256, 21, 17)
    assert shapes["fc6"] == (1, 4096, 16, 12)
    assert shapes["upscore_21classes"] == (1, 21, 543, 415)
    assert shapes["score"] == (1, 21, 500, 356)


def test_python_data_layer_takes_the_given_shape_and_derives_the_label(peer):
    net = filter_net(read_net(peer("fcn__voc-fcn32s__train.prototxt")), phase="train")
    shapes = blob_shapes(net, {"data": (1, 3, 500, 500)})
    assert shapes["label"] == (1, 1, 500, 500)
    assert shapes["upscore"] == (1, 21, 544, 544)  # fc6 16 (as in FCN-8s): 32*15+64 = 544
    assert shapes["score"] == (1, 21, 500, 500)
    assert shapes["loss"] == ()


def test_python_data_layer_without_a_shape_names_python_and_the_option(peer):
    path = peer("fcn__voc-fcn32s__train.prototxt")
    net, source_map = read_net_located(path)
    with pytest.raises(ShapeError, match=r"train\.prototxt:\d+:\d+: layer 'data' \(Python\).*--input-shape"):
        blob_shapes(filter_net(net, phase="train"), source_map=source_map)


def test_unsupported_layer_is_named_with_its_place(peer):
    path = peer("digits__binary-segmentation__segmentation-model.prototxt")
    net, source_map = read_net_located(path)
    with pytest.raises(ShapeError) as caught:
        blob_shapes(filter_net(net, phase="train"), source_map=source_map)
    message = str(caught.value)
    assert f"{path}:" in message
    assert "layer 'lossL1' has type 'L1Loss', which digitslite does not run: it is NVIDIA Caffe's " in message
    assert "use EuclideanLoss" in message
