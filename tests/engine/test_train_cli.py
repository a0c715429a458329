"""`digitslite train`: options become solver fields, the job folder gets its files, errors are one line."""
import json

import pytest
from click.testing import CliRunner

from digitslite.caffe.prototxt import read_net, read_solver
from digitslite.cli import main
from tests.engine.test_train_support import fcn_net, write_dataset


def test_train_writes_the_job_folder_and_reports_json(tmp_path):
    dataset = write_dataset(tmp_path / "dataset", train_count=8, val_count=4)
    net = tmp_path / "net.prototxt"
    net.write_text(fcn_net())
    solver = tmp_path / "solver.prototxt"
    solver.write_text('base_lr: 0.5 lr_policy: "step" gamma: 0.5 stepsize: 2 momentum: 0.9 max_iter: 100 '
                      'snapshot_prefix: "snaps/fcn"')
    job = tmp_path / "job"
    result = CliRunner().invoke(main, [
        "train", "--dataset", str(dataset), "--net", str(net), "--solver", str(solver), "--base-lr", "0.01",
        "--max-iter", "4", "--batch-size", "2", "--display", "2", "--test-interval", "4", "--test-iter", "1",
        "--seed", "1", "--cpu", "-o", str(job), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["iterations"] == 4 and report["stopped"] is False
    assert report["snapshots"] == [str(job / "snaps" / "fcn_iter_4.caffemodel")]
    written = read_solver(job / "solver.prototxt")
    assert (written.base_lr, written.gamma, written.max_iter, written.random_seed) == (
        pytest.approx(0.01), 0.5, 4, 1)
    assert written.net == "train_val.prototxt"
    batch_sizes = {layer.data_param.batch_size for layer in read_net(job / "train_val.prototxt").layer
                   if layer.type == "Data"}
    assert batch_sizes == {2}
    lines = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
    assert [(line["phase"], line["iteration"]) for line in lines] == [
        ("val", 0), ("train", 0), ("train", 2), ("train", 4), ("val", 4)]
    assert [line["lr"] for line in lines if line["phase"] == "train"] == pytest.approx([0.01, 0.005, 0.0025])
    assert "Iteration 2, loss = " in result.stderr and ", lr = 0.005" in result.stderr  # as Caffe logs it
    assert "Iteration 4, Testing net (val): " in result.stderr


def test_train_without_a_network_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(main, ["train", "--cpu", "-o", str(tmp_path / "job")])
    assert result.exit_code == 1
    assert "error: no network to train" in result.stderr


def test_test_iter_needs_a_test_interval(tmp_path):
    net = tmp_path / "net.prototxt"
    net.write_text(fcn_net())
    result = CliRunner().invoke(main, ["train", "--net", str(net), "--test-iter", "2", "-o", str(tmp_path)])
    assert result.exit_code == 1
    assert "--test-iter needs --test-interval" in result.stderr
