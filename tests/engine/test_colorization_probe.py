"""The colorization probe reads the right blobs of a test net and scores them (hand-computed)."""
import numpy as np
import pytest
import torch

from digitslite.caffe.prototxt import parse_net
from digitslite.engine.colorization.decode import annealed_mean, softmax
from digitslite.engine.colorization.probe import coding_probe
from digitslite.engine.net import CaffeNet
from digitslite.errors import UserError

CENTRES = np.array([[0.0, 0.0], [30.0, 40.0]])

NET = """
name: "bins"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 1 dim: 2 } } }
layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 1 dim: 1 dim: 1 dim: 2 } } }
layer { name: "h" type: "Input" top: "h" input_param { shape { dim: 1 dim: 1 dim: 2 dim: 2 } } }
layer { name: "score" type: "Convolution" bottom: "data" top: "score"
        convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "constant" value: 0 } } }
layer { name: "loss" type: "InfogainLoss" bottom: "score" bottom: "label" bottom: "h" top: "loss" }
"""


class LinearCoding:
    """A stand-in coding: lightness as stored, bins to their centres, RGB = (L + a, L + b, L)."""

    def lightness(self, data):
        return data[:, 0]

    def truth_chroma(self, label):
        return np.moveaxis(CENTRES[label[:, 0].astype(int)], -1, 1)

    def predicted_chroma(self, output):
        return np.stack([annealed_mean(softmax(scores), CENTRES, 1.0) for scores in output])

    def rgb(self, lightness, chroma):
        return np.stack([lightness + chroma[:, 0], lightness + chroma[:, 1], lightness], axis=-1)


def test_probe_scores_the_infogain_net_by_hand():
    net = CaffeNet(parse_net(NET), "test")
    probe = coding_probe(net, LinearCoding())
    assert probe.keep == ("data", "score", "label")
    inputs = {"data": torch.full((1, 1, 1, 2), 100.0), "label": torch.tensor([[[[0.0, 1.0]]]]),
              "h": torch.eye(2).reshape(1, 1, 2, 2)}
    tally = probe.tally()
    tally.update(net(inputs, keep=probe.keep))
    fields = tally.fields()
    # equal scores: each pixel is (15, 20), 25 away from both (0, 0) and (30, 40)
    assert fields["ab_error"] == pytest.approx(25)
    assert fields["ab_auc"] == pytest.approx(126 / 151)
    # RGB: predicted (115, 120, 100) both pixels; truth (100, 100, 100) and (130, 140, 100)
    assert fields["psnr"] == pytest.approx(10 * np.log10(255 ** 2 / ((225 + 400 + 225 + 400) / 6)))
    assert fields["truth_colourfulness"] > fields["colourfulness"] > 0


def test_a_net_without_a_colour_loss_is_refused_with_the_networks_to_start_from():
    net = CaffeNet(parse_net(NET.replace('type: "InfogainLoss"', 'type: "SoftmaxWithLoss"')
                             .replace('bottom: "h" ', "")), "test")
    with pytest.raises(UserError, match="colorize_classes or colorize_hypercolumns"):
        coding_probe(net, LinearCoding())
