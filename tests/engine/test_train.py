"""The training loop: learning, metrics, determinism, iter_size, mixed precision, stop and resume."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from digitslite.caffe.caffemodel import read_weights
from digitslite.caffe.prototxt import parse_net, parse_solver
from digitslite.engine.dispatch import train
from digitslite.engine.snapshot import snapshot_files
from digitslite.engine.train import TrainConfig
from digitslite.errors import UserError
from tests.engine.test_train_support import fcn_net, feed_batches, write_dataset

SGD = 'type: "SGD" base_lr: 0.1 lr_policy: "fixed" momentum: 0.9 weight_decay: 0.0005 random_seed: 7 '


def solver(extra: str):
    return parse_solver(SGD + extra)


def records(job: Path) -> list[dict]:
    return [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]


def without_timing(lines: list[dict]) -> list[dict]:
    return [{key: value for key, value in line.items() if key != "images_per_s"} for line in lines]


def final_weights(result) -> dict[str, list[np.ndarray]]:
    return read_weights(result.snapshots[-1])


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        for x, y in zip(a[name], b[name], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("dataset"))


def test_a_tiny_fcn_learns_from_an_lmdb_dataset_and_logs_segmentation_metrics(dataset, tmp_path):
    config = TrainConfig(solver=solver("max_iter: 60 display: 10 test_iter: 2 test_interval: 30"),
                         net=parse_net(fcn_net(crop=10)), device="cpu", dataset_root=dataset)
    result = train(config, tmp_path)
    assert (result.iterations, result.stopped) == (60, False)
    lines = records(tmp_path)
    train_lines = [line for line in lines if line["phase"] == "train"]
    val_lines = [line for line in lines if line["phase"] == "val"]
    assert [line["iteration"] for line in val_lines] == [0, 30, 60]
    assert [line["iteration"] for line in train_lines] == [0, 10, 20, 30, 40, 50, 60]
    assert all(line["lr"] == pytest.approx(0.1) for line in train_lines)
    assert all(line["images_per_s"] > 0 for line in train_lines[:-1])
    assert train_lines[-1]["loss"] < 0.6 * train_lines[0]["loss"]
    first, last = val_lines[0], val_lines[-1]
    assert last["mean_iu"] > first["mean_iu"] + 0.3 and last["mean_iu"] > 0.5
    assert len(last["per_class_iu"]) == 3
    assert last["pixel_accuracy"] == pytest.approx(last["accuracy"], abs=1e-6)
    confusion = last["confusion_matrix"]    # rows are the truth, columns the prediction
    assert len(confusion) == 3 and all(len(row) == 3 for row in confusion)
    diagonal, total = sum(confusion[i][i] for i in range(3)), sum(map(sum, confusion))
    assert diagonal / total == pytest.approx(last["pixel_accuracy"], abs=1e-9)
    assert last["loss"] < first["loss"]
    assert result.snapshots == [snapshot_files(tmp_path / "snapshot", 60).caffemodel]


def small_run(tmp_path: Path, name: str, seed: int = 7):
    settings = solver("max_iter: 12 display: 4")
    settings.random_seed = seed
    config = TrainConfig(solver=settings, net=parse_net(fcn_net()), device="cpu")
    return train(config, tmp_path / name, feeds={"train": feed_batches(16, 1)})


def test_the_same_seed_gives_bit_identical_runs_and_another_seed_does_not(tmp_path):
    first, second = small_run(tmp_path, "a"), small_run(tmp_path, "b")
    assert_same_weights(final_weights(first), final_weights(second))
    assert without_timing(records(tmp_path / "a")) == without_timing(records(tmp_path / "b"))
    other = small_run(tmp_path, "c", seed=8)
    assert not np.array_equal(final_weights(other)["conv1"][0], final_weights(first)["conv1"][0])


def test_bf16_autocast_on_the_cpu_tracks_fp32(tmp_path):
    # Tolerance: bf16 keeps ~3 significant digits in the forward pass; parameters, gradients and
    # the solver stay float32. Measured: losses within 0.4 %, weights within 0.009 after 20 updates.
    net = parse_net(fcn_net().replace("dropout_ratio: 0.1", "dropout_ratio: 0.0"))
    results = {}
    for amp in (None, "bf16"):
        config = TrainConfig(solver=solver("max_iter: 20 display: 1"), net=net, device="cpu", amp=amp)
        results[amp] = train(config, tmp_path / str(amp), feeds={"train": feed_batches(16, 1)})
    losses = {amp: [line["loss"] for line in records(tmp_path / str(amp))] for amp in results}
    np.testing.assert_allclose(losses["bf16"], losses[None], rtol=0.01)
    exact, mixed = final_weights(results[None]), final_weights(results["bf16"])
    for name in exact:
        for a, b in zip(exact[name], mixed[name], strict=True):
            np.testing.assert_allclose(b, a, atol=0.03)
    assert not np.array_equal(exact["conv1"][0], mixed["conv1"][0]), "bf16 must actually have been used"



@pytest.mark.parametrize("knob", ["channels_last", "compile"])
def test_layout_and_compile_knobs_track_plain_fp32(knob, tmp_path):
    # Tolerance: both only reorder float32 arithmetic (memory layout, fused kernels), so after 20
    # updates losses agree to 1e-4 relative and weights to 1e-4 absolute (measured: equal to 5 digits).
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    net = parse_net(fcn_net().replace("dropout_ratio: 0.1", "dropout_ratio: 0.0"))
    runs = {}
    for name, options in (("plain", {}), (knob, {knob: True})):
        config = TrainConfig(solver=solver("max_iter: 20 display: 1"), net=net, device="cpu", **options)
        runs[name] = train(config, tmp_path / name, feeds={"train": feed_batches(16, 1)})
    losses = {name: [line["loss"] for line in records(tmp_path / name)] for name in runs}
    np.testing.assert_allclose(losses[knob], losses["plain"], rtol=1e-4)
    plain, tuned = final_weights(runs["plain"]), final_weights(runs[knob])
    for name in plain:
        for a, b in zip(plain[name], tuned[name], strict=True):
            np.testing.assert_allclose(b, a, atol=1e-4)
    if knob == "compile":
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1, "the net must have been compiled"


LEAST_SQUARES = """
name: "ls"
layer { name: "data" type: "Data" top: "data" data_param { batch_size: 4 } }
layer { name: "targets" type: "Data" top: "targets" data_param { batch_size: 4 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  param { name: "weights" } param { name: "bias" }
  inner_product_param { num_output: 1 weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "targets" top: "loss" }
"""


def test_iter_size_k_with_batch_b_equals_one_batch_of_k_times_b(tmp_path):
    """caffe-spec §7.8 Accum: iter_size 2 with batch 2 matches batch 4 after 4 updates."""
    generator = torch.Generator().manual_seed(0)
    data, targets = torch.randn(16, 3, 2, 2, generator=generator), torch.randn(16, 1, generator=generator)

    def batches(size: int) -> list[dict[str, torch.Tensor]]:
        return [{"data": data[i:i + size], "targets": targets[i:i + size]} for i in range(0, 16, size)]

    settings = ('type: "SGD" base_lr: 0.01 lr_policy: "fixed" momentum: 0.9 weight_decay: 0.5 '
                "random_seed: 1 max_iter: 4 ")
    whole = train(TrainConfig(solver=parse_solver(settings), net=parse_net(LEAST_SQUARES), device="cpu"),
                  tmp_path / "whole", feeds={"train": batches(4)})
    halves = train(TrainConfig(solver=parse_solver(settings + "iter_size: 2"), net=parse_net(LEAST_SQUARES),
                               device="cpu"), tmp_path / "halves", feeds={"train": batches(2)})
    for a, b in zip(final_weights(whole)["ip"], final_weights(halves)["ip"], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_stopping_snapshots_and_resuming_continues_bit_exactly(dataset, tmp_path):
    """§7.8 Snapshot: K updates + snapshot + restore + K more equals 2K updates (weights, history,
    and with digitslite's sidecar also data order, random crops/mirrors, dropout and the log)."""
    settings = "max_iter: 16 display: 2 test_iter: 1 test_interval: 5 average_loss: 3"

    def config(resume=None) -> TrainConfig:
        return TrainConfig(solver=solver(settings), net=parse_net(fcn_net(crop=10)), device="cpu",
                           dataset_root=dataset, resume=resume)

    whole = train(config(), tmp_path / "whole")
    calls = []
    stopped = train(config(), tmp_path / "resumed", should_stop=lambda: calls.append(1) or len(calls) > 7)
    assert (stopped.stopped, stopped.iterations) == (True, 7)
    files = snapshot_files(tmp_path / "resumed" / "snapshot", 7)
    assert stopped.snapshots == [files.caffemodel] and files.solverstate.is_file()
    resumed = train(config(resume=files.solverstate), tmp_path / "resumed")
    assert (resumed.stopped, resumed.iterations) == (False, 16)
    assert_same_weights(final_weights(whole), final_weights(resumed))
    assert without_timing(records(tmp_path / "whole")) == without_timing(records(tmp_path / "resumed"))
    for name in ("whole", "resumed"):
        assert snapshot_files(tmp_path / name / "snapshot", 16).solverstate.is_file()
    whole_state = (tmp_path / "whole" / "snapshot_iter_16.solverstate").read_bytes()
    assert whole_state == (tmp_path / "resumed" / "snapshot_iter_16.solverstate").read_bytes()


SOLVER_TEST_NET = """
name: "TestNetwork"
layer { name: "data" type: "Data" top: "data" top: "label" data_param { batch_size: 5 } }
layer { name: "innerprod" type: "InnerProduct" bottom: "data" top: "innerprod"
  inner_product_param { num_output: 10 weight_filler { type: "gaussian" } } }
layer { name: "accuracy" type: "Accuracy" bottom: "innerprod" bottom: "label" top: "accuracy"
  exclude { phase: TRAIN } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "innerprod" bottom: "label"
  include { phase: TRAIN } include { phase: TEST stage: "with-softmax" } }
"""


def test_test_states_choose_the_layers_of_each_test_net(tmp_path):
    """caffe-spec §7.9 TestInitTrainTestNets: the train net has the loss but no accuracy; test net 0
    (stage with-softmax) has both; test net 1 only the accuracy."""
    generator = torch.Generator().manual_seed(0)
    feed = [{"data": torch.randn(5, 2, 3, 4, generator=generator),
             "label": torch.randint(0, 10, (5,), generator=generator).float()}]
    settings = solver('max_iter: 1 display: 1 test_interval: 1 test_iter: 2 test_iter: 2 '
                      'test_state { stage: "with-softmax" } test_state { }')
    train(TrainConfig(solver=settings, net=parse_net(SOLVER_TEST_NET), device="cpu"), tmp_path,
          feeds={"train": feed, "val": feed})
    lines = records(tmp_path)
    first_train = next(line for line in lines if line["phase"] == "train")
    assert "accuracy" not in first_train and first_train["loss"] > 0
    tests = {line["test_net"]: line for line in lines if line["phase"] == "val" and line["iteration"] == 0}
    assert "accuracy" in tests[0] and tests[0]["loss"] > 0
    assert "accuracy" in tests[1] and tests[1]["loss"] == 0


def test_a_data_layer_without_a_dataset_is_a_user_error(tmp_path):
    config = TrainConfig(solver=solver("max_iter: 1"), net=parse_net(fcn_net()), device="cpu")
    with pytest.raises(UserError, match=r"data_param\.source is empty"):
        train(config, tmp_path)


def test_a_known_fcn_python_data_layer_asks_for_its_dataset(tmp_path):
    net = parse_net('name: "p" layer { name: "data" type: "Python" top: "data" top: "label" '
                    'python_param { module: "voc_layers" layer: "SBDDSegDataLayer" } }')
    with pytest.raises(UserError, match=r"data_param\.source is empty.*give the dataset folder"):
        train(TrainConfig(solver=solver("max_iter: 1"), net=net, device="cpu"), tmp_path)


def test_test_iter_without_test_interval_is_refused(tmp_path):
    config = TrainConfig(solver=solver("max_iter: 1 test_iter: 2"), net=parse_net(fcn_net()), device="cpu")
    with pytest.raises(UserError, match="test_interval must be > 0"):
        train(config, tmp_path, feeds={"train": feed_batches(4, 1), "val": feed_batches(4, 2)})
