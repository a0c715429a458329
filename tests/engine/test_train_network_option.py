"""`digitslite train --network NAME`: a standard network sized from the dataset, with its solver."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from digitslite.caffe.prototxt import read_net, read_solver
from digitslite.cli import main
from digitslite.datasets.create import create_dataset
from digitslite.datasets.demo import write_demo
from digitslite.datasets.options import DatasetOptions


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    work = tmp_path_factory.mktemp("network_option")
    demo = write_demo(work / "demo", count=4, val_count=2, width=48, height=32, seed=3)
    folder = work / "demo"
    options = DatasetOptions(images=folder / "images", labels=folder / "labels",
                             val_images=folder / "val_images", val_labels=folder / "val_labels", workers=1)
    summary = create_dataset(options, work / "dataset")
    return summary.path, len(demo["classes"])


def test_standard_network_trains_with_the_dataset_class_count_and_its_solver(dataset, tmp_path):
    dataset_dir, num_classes = dataset
    job = tmp_path / "job"
    result = CliRunner().invoke(main, ["train", "--dataset", str(dataset_dir), "--network", "fcn_tiny",
                                       "--max-iter", "2", "--batch-size", "2", "--test-interval", "2",
                                       "--test-iter", "1", "--cpu", "-o", str(job), "--json"])
    assert result.exit_code == 0, result.output
    saved = read_net(job / "train_val.prototxt")
    score_fr = next(layer for layer in saved.layer if layer.name == "score_fr")
    assert score_fr.convolution_param.num_output == num_classes
    sources = {layer.data_param.source for layer in saved.layer if layer.type == "Data"}
    assert sources == {str(dataset_dir / db / part) for db in ("train_db", "val_db")
                       for part in ("features", "labels")}
    solver = read_solver(job / "solver.prototxt")
    assert solver.type == "Adam" and solver.max_iter == 2   # fcn_tiny's solver, with the CLI override
    assert (job / "snapshot_iter_2.caffemodel").is_file()
    assert json.loads(result.stdout)["iterations"] == 2    # progress lines go to stderr


def test_network_needs_a_dataset_for_its_class_count(tmp_path):
    result = CliRunner().invoke(main, ["train", "--network", "fcn_tiny", "-o", str(tmp_path / "job")])
    assert result.exit_code == 1
    assert "--network needs --dataset" in result.output


def test_network_and_net_are_exclusive(tmp_path):
    result = CliRunner().invoke(main, ["train", "--network", "fcn_tiny", "--net", "x.prototxt",
                                       "-o", str(tmp_path / "job")])
    assert result.exit_code == 2
    assert "give --network or --net, not both" in result.output


def test_a_relative_dataset_folder_resolves_once_from_where_the_command_runs(dataset, tmp_path):
    # `train --dataset ds` once wrote ds/train_db/... into the net and then joined ds to it again
    dataset_dir, _ = dataset
    (tmp_path / "ds").symlink_to(dataset_dir, target_is_directory=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-m", "digitslite", "train", "--dataset", "ds", "--network", "fcn_tiny",
         "--max-iter", "1", "--batch-size", "1", "--test-interval", "1", "--test-iter", "1", "--cpu",
         "-o", "job", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["iterations"] == 1
    sources = {layer.data_param.source for layer in read_net(tmp_path / "job" / "train_val.prototxt").layer
               if layer.type == "Data"}
    assert sources == {str(tmp_path / "ds" / db / part) for db in ("train_db", "val_db")
                       for part in ("features", "labels")}


@pytest.mark.parametrize(("options", "message"), [
    (("--lr-policy", "exp", "--gamma", "-0.5"), 'lr_policy "exp" needs --gamma >= 0 (it is -0.5'),
    (("--lr-policy", "sigmoid", "--gamma", "-0.1", "--stepsize", "5"),
     'lr_policy "sigmoid" needs --gamma >= 0'),
    (("--lr-policy", "sigmoid", "--gamma", "0.1", "--stepsize", "0"),
     'lr_policy "sigmoid" needs --stepsize > 0'),
])
def test_solver_values_caffe_refuses_are_refused_by_their_flag(dataset, tmp_path, options, message):
    dataset_dir, _ = dataset
    result = CliRunner().invoke(main, ["train", "--dataset", str(dataset_dir), "--network", "fcn_tiny",
                                       *options, "--cpu", "-o", str(tmp_path / "job")])
    assert result.exit_code == 1
    assert message in result.stderr
    assert not (tmp_path / "job").exists(), "refused before anything is written"


def test_a_solver_file_value_caffe_refuses_is_named_by_its_field(dataset, tmp_path):
    dataset_dir, _ = dataset
    solver = tmp_path / "solver.prototxt"
    solver.write_text('base_lr: 0.01 lr_policy: "sigmoid" gamma: 0.1 max_iter: 10')
    result = CliRunner().invoke(main, ["train", "--dataset", str(dataset_dir), "--network", "fcn_tiny",
                                       "--solver", str(solver), "--cpu", "-o", str(tmp_path / "job")])
    assert result.exit_code == 1
    assert f'{solver}: lr_policy "sigmoid" needs stepsize > 0 (it is 0' in result.stderr
