"""Networks written for DIGITS and for the FCN reference repository train unchanged: the FCN Python data
layers and DIGITS' supplied data/label inputs are bound to a digitslite dataset."""
import json

import pytest
from click.testing import CliRunner

from digitslite.caffe.prototxt import read_net
from digitslite.cli import main
from tests.engine.test_train_support import FCN_NET, write_dataset

# The tiny FCN's layers after its four Data layers, without phase rules (a train or val file).
BODY = FCN_NET[FCN_NET.index('layer { name: "conv1"'):].replace(' include { stage: "val" }', "")
VOC_DATA = ('layer { name: "data" type: "Python" top: "data" top: "label" '
            'python_param { module: "voc_layers" '
            'layer: "SBDDSegDataLayer" param_str: "{\'sbdd_dir\': \'../data/sbdd/dataset\', \'seed\': 1337, '
            '\'split\': \'SPLIT\', \'mean\': (104.00699, 116.66877, 122.67892)}" } }\n')


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = write_dataset(tmp_path_factory.mktemp("digits_nets") / "ds", train_count=4, val_count=2)
    (root / "dataset.json").write_text(json.dumps({"classes": ["background", "red", "green"]}))
    return root


def _train(*args: str):
    return CliRunner().invoke(main, ["train", *args, "--max-iter", "2", "--cpu", "--json"])


def test_fcn_python_data_layers_train_from_the_dataset_unchanged(dataset, tmp_path):
    (tmp_path / "train.prototxt").write_text(VOC_DATA.replace("SPLIT", "train") + BODY)
    (tmp_path / "val.prototxt").write_text(VOC_DATA.replace("SPLIT", "seg11valid") + BODY)
    solver = tmp_path / "solver.prototxt"
    solver.write_text('train_net: "train.prototxt" test_net: "val.prototxt" test_iter: 2 test_interval: 2 '
                      'base_lr: 0.001 lr_policy: "fixed" momentum: 0.9 display: 1')
    job = tmp_path / "job"
    result = _train("--solver", str(solver), "--dataset", str(dataset), "-o", str(job))
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
    assert [(record["phase"], record["iteration"]) for record in records if record["phase"] == "val"] == [
        ("val", 0), ("val", 2)]   # 2 val images, batch 1 each: test_iter 2 reads the whole val_db


def test_another_python_layer_is_refused_naming_its_module_and_class(dataset, tmp_path):
    net = tmp_path / "train.prototxt"
    net.write_text(VOC_DATA.replace("voc_layers", "my_layers").replace("SBDDSegDataLayer", "Reader") + BODY)
    result = _train("--net", str(net), "--dataset", str(dataset), "-o", str(tmp_path / "job"))
    assert result.exit_code == 1
    assert "layer 'data' is a Python layer (my_layers.Reader), which digitslite does not run" in result.stderr
    check = CliRunner().invoke(main, ["net", "check", str(net)])
    assert check.exit_code == 1 and "(my_layers.Reader)" in check.stderr


def test_a_digits_style_net_without_data_layers_checks_and_trains(dataset, tmp_path):
    net = tmp_path / "net.prototxt"
    body = FCN_NET[FCN_NET.index('layer { name: "conv1"'):]
    net.write_text(body.replace("num_output: 3 kernel", "num_output: {{num_classes}} kernel"))
    check = CliRunner().invoke(main, ["net", "check", str(net), "--dataset", str(dataset)])
    assert check.exit_code == 0, check.output
    assert "DIGITS-style network" in check.stdout
    assert "DIGITS supplies: data 1x3x12x12, label 1x1x12x12" in check.stdout   # the dataset's records
    assert "outputs: accuracy scalar, loss scalar" in check.stdout   # shapes from the dataset's records
    job = tmp_path / "job"
    result = _train("--net", str(net), "--dataset", str(dataset), "--test-interval", "2", "--test-iter", "1",
                    "-o", str(job))
    assert result.exit_code == 0, result.output
    saved = read_net(job / "train_val.prototxt")
    assert [(layer.name, list(layer.top)) for layer in saved.layer if layer.type == "Data"] == [
        ("train-data", ["data"]), ("train-label", ["label"]),
        ("val-data", ["data"]), ("val-label", ["label"])]


def test_a_data_source_that_can_be_read_gives_the_check_its_shapes(dataset, tmp_path):
    net = tmp_path / "train_val.prototxt"
    source = dataset / "val_db" / "features"
    test_data = "transform_param { scale: 0.00390625 CROP } data_param { batch_size: 4 backend: LMDB }"
    readable = (f'transform_param {{ scale: 0.00390625 crop_size: 8 }} '
                f'data_param {{ source: "{source}" batch_size: 4 }}')
    net.write_text(FCN_NET.replace("CROP_MIRROR", "").replace(test_data, readable))
    check = CliRunner().invoke(main, ["net", "check", str(net), "--json"])
    assert check.exit_code == 0, check.output
    report = json.loads(check.stdout)
    # the 12x12 records of val_db, cropped to crop_size 8, in batches of 4
    assert report["blobs"]["data"] == [4, 3, 8, 8] and report["blobs"]["score"] == [4, 3, 8, 8]
    assert f"input 'data' has the 3x12x12 records of {source}" in report["notes"]
