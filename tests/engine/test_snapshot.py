"""Snapshot files: Caffe's names and messages (caffe-spec §4.8), the digitslite sidecar, no pickles."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from digitslite.caffe import caffe_pb2
from digitslite.caffe.caffemodel import read_caffemodel, read_weights
from digitslite.caffe.prototxt import parse_net, parse_solver
from digitslite.engine.dispatch import train
from digitslite.engine.snapshot import read_snapshot, rng_state, set_rng_state, snapshot_files, write_snapshot
from digitslite.engine.train import TrainConfig
from digitslite.errors import UserError
from tests.engine.test_train_support import fcn_net, feed_batches

NET = parse_net('name: "n" layer { name: "in" type: "Input" top: "x" '
                "input_param { shape { dim: 1 dim: 2 } } } "
                'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" '
                "inner_product_param { num_output: 3 } }")


def test_names_concatenate_the_prefix_literally_like_caffe(tmp_path):
    assert snapshot_files("snapshots/", 4).caffemodel == Path("snapshots/_iter_4.caffemodel")
    files = snapshot_files(tmp_path / "train", 1000)
    assert [path.name for path in (files.caffemodel, files.solverstate, files.sidecar)] == [
        "train_iter_1000.caffemodel", "train_iter_1000.solverstate", "train_iter_1000.resume.json"]


def write_example(prefix, extra=None):
    weights = {"ip": [np.arange(6, dtype=np.float32).reshape(3, 2), np.ones(3, dtype=np.float32)]}
    history = [np.full((3, 2), 0.5, dtype=np.float32), np.zeros(3, dtype=np.float32)]
    return write_snapshot(prefix, 12, 2, NET, weights, history, extra or {"feeds": {"train": 12}})


def test_the_solverstate_is_caffes_message_and_reads_back(tmp_path):
    files = write_example(tmp_path / "snap")
    state = caffe_pb2.SolverState.FromString(files.solverstate.read_bytes())
    assert (state.iter, state.current_step, state.learned_net) == (12, 2, "snap_iter_12.caffemodel")
    assert [tuple(blob.shape.dim) for blob in state.history] == [(3, 2), (3,)]
    weights = read_weights(files.caffemodel)
    np.testing.assert_array_equal(weights["ip"][0], np.arange(6).reshape(3, 2))
    snapshot = read_snapshot(files.solverstate)
    assert (snapshot.iteration, snapshot.current_step, snapshot.caffemodel) == (12, 2, files.caffemodel)
    np.testing.assert_array_equal(snapshot.history[0], np.full((3, 2), 0.5))
    assert snapshot.extra["feeds"] == {"train": 12}
    assert read_snapshot(files.caffemodel).iteration == 12
    assert json.loads(files.sidecar.read_text())["iter"] == 12


def test_a_snapshot_moved_with_its_folder_still_finds_its_weights(tmp_path):
    files = write_example(tmp_path / "job" / "snap")
    shutil.move(tmp_path / "job", tmp_path / "moved")
    snapshot = read_snapshot(tmp_path / "moved" / files.solverstate.name)
    assert snapshot.caffemodel == tmp_path / "moved" / files.caffemodel.name


def test_a_solverstate_without_its_caffemodel_is_refused_with_the_fix(tmp_path):
    files = write_example(tmp_path / "snap")
    files.caffemodel.unlink()
    with pytest.raises(UserError, match=r"keep the \.caffemodel of the snapshot next to the \.solverstate"):
        read_snapshot(files.solverstate)
    damaged = tmp_path / "damaged.solverstate"
    damaged.write_bytes(b"\xff\xff")
    with pytest.raises(UserError, match=r"not a Caffe \.solverstate"):
        read_snapshot(damaged)


def test_a_caffe_solverstate_without_sidecar_resumes_without_extra_state(tmp_path):
    files = write_example(tmp_path / "snap")
    files.sidecar.unlink()
    assert read_snapshot(files.solverstate).extra is None


def test_rng_state_round_trips_through_json():
    state = json.loads(json.dumps(rng_state()))
    expected = torch.rand(5)
    torch.rand(3)
    set_rng_state(state)
    assert torch.equal(torch.rand(5), expected)


@pytest.mark.parametrize(("kind", "per_param"), [("SGD", 1), ("Adam", 2)])
def test_a_training_snapshot_holds_the_whole_net_and_one_history_blob_per_buffer(tmp_path, kind, per_param):
    settings = parse_solver(f'type: "{kind}" base_lr: 0.01 lr_policy: "fixed" momentum: 0.9 max_iter: 3 '
                            "snapshot: 3 random_seed: 1")
    train(TrainConfig(solver=settings, net=parse_net(fcn_net()), device="cpu"), tmp_path,
          feeds={"train": feed_batches(8, 1)})
    files = snapshot_files(tmp_path / "snapshot", 3)
    model = read_caffemodel(files.caffemodel)
    blobs = {layer.name: len(layer.blobs) for layer in model.layer}
    # Caffe's Net::ToProto: every layer, automatic Split layers included, blobs where they exist.
    assert blobs["data_data_0_split"] == 0 and blobs["conv1"] == 2 and blobs["upscore"] == 1
    assert {layer.phase for layer in model.layer} == {caffe_pb2.TRAIN}
    state = caffe_pb2.SolverState.FromString(files.solverstate.read_bytes())
    learnables = sum(blobs.values())
    assert (state.iter, len(state.history)) == (3, per_param * learnables)
    sidecar = json.loads(files.sidecar.read_text())
    assert sidecar["feeds"]["train"] == 3 and set(sidecar["rng"]) >= {"cpu"}
