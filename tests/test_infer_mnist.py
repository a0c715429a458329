"""Acceptance: the real 10,000-iteration LeNet snapshot classifies the sample digits via the CLI.

Facts from ../shared/peer_nets/MANIFEST.md: every sample `img_<label>_<n>.png` is classified as
<label> at the training scale 1/256, and ip2 of img_1_2.png is about the values below.
"""
import json

import pytest
from click.testing import CliRunner

from digitslite.cli import main

SAMPLES = ["0_10", "0_3", "1_2", "1_5", "2_1", "4_4", "4_6", "7_0", "9_7", "9_9"]
IP2_OF_IMG_1_2 = [-1.370, 12.576, -0.605, -3.928, 1.358, -1.993, -1.198, 2.237, 0.512, -5.228]


def test_lenet_snapshot_classifies_every_sample_digit(peer):
    images = [str(peer(f"mnistdeploy__samples__img_{sample}.png")) for sample in SAMPLES]
    result = CliRunner().invoke(main, [
        "infer", "--net", str(peer("mnistdeploy__mnist_deploy.prototxt")),
        "--weights", str(peer("mnistdeploy__lenet_iter_10000.caffemodel")),
        "--scale", "0.00390625", "--blob", "ip2", "--labels", str(peer("mnistdeploy__labels.txt")),
        "--device", "cpu", "--json", *images])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert [record["image"] for record in records] == images
    for sample, record in zip(SAMPLES, records, strict=True):
        label = int(sample.split("_")[0])
        assert record["argmax"]["loss"] == label, record["image"]  # "loss" is the Softmax output
        assert record["argmax"]["ip2"] == label, record["image"]
        assert record["class_names"]["loss"].startswith(f"{label} ")  # labels.txt: "<digit> <name>"
        assert sum(record["outputs"]["loss"]) == pytest.approx(1.0, abs=1e-5)
    ip2 = records[SAMPLES.index("1_2")]["outputs"]["ip2"]
    assert len(ip2) == 10
    assert all(abs(got - want) <= 1e-3 for got, want in zip(ip2, IP2_OF_IMG_1_2, strict=True)), ip2
