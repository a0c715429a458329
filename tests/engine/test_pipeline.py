"""Pipeline-parallel training: K stages x M micro-batches update as one process with iter_size M.

Tolerance: the stages add the same float32 gradients in the same order as one process; only the
clipping norm (summed per stage, then over the stages) is added up in another order, so losses
agree to 1e-5 relative and weights to 1e-6 absolute.
"""
import json

import numpy as np
import pytest

from digitslite.caffe.caffemodel import write_caffemodel
from digitslite.caffe.deploy import bind_data_sources
from digitslite.caffe.partition import partition
from digitslite.caffe.prototxt import parse_net
from digitslite.engine.dispatch import train
from digitslite.engine.net import CaffeNet, runnable_net
from digitslite.engine.snapshot import snapshot_files
from digitslite.engine.train import TrainConfig
from digitslite.errors import UserError
from digitslite.networks import load_network, load_solver
from tests.engine.test_train import assert_same_weights, final_weights, records, solver
from tests.engine.test_train_support import fcn_net, write_dataset

NO_DROPOUT = fcn_net().replace("dropout_ratio: 0.1", "dropout_ratio: 0.0")
SHAPES = {"data": (4, 3, 12, 12), "label": (4, 1, 12, 12)}
BATCHNORM = NO_DROPOUT.replace(
    'layer { name: "relu1"',
    'layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }\n'
    'layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1"\n'
    '  scale_param { bias_term: true } }\n'
    'layer { name: "relu1"')


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("pipeline_dataset"))


def assert_close_runs(one, piped, one_job, piped_job, final_display: bool = True) -> None:
    """`final_display` False: the display after the last update is left out (with replicas it averages
    one batch of each, as on data-parallel ranks)."""
    end = None if final_display else -1
    losses = [[line["loss"] for line in records(job) if line["phase"] == "train"][:end]
              for job in (one_job, piped_job)]
    assert len(losses[0]) == len(losses[1]) > 1
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    expected, got = final_weights(one), final_weights(piped)
    assert expected.keys() == got.keys()
    for name in expected:
        for a, b in zip(expected[name], got[name], strict=True):
            np.testing.assert_allclose(b, a, atol=1e-6, err_msg=name)


def with_iter_size(settings, iter_size: int):
    copy = type(settings)()
    copy.CopyFrom(settings)
    copy.iter_size = iter_size
    return copy


def assert_piped_equals_iter_size(net, settings, dataset, tmp_path, iter_size: int,
                                  final_display: bool = True, **pipeline):
    """Train on one process with `iter_size` (job "one") and on the pipeline `pipeline` describes (job
    "piped"), assert the two runs agree, and return the piped run."""
    one = train(TrainConfig(solver=with_iter_size(settings, iter_size), net=net, device="cpu",
                            dataset_root=dataset), tmp_path / "one")
    piped = train(TrainConfig(solver=settings, net=net, device="cpu", dataset_root=dataset, **pipeline),
                  tmp_path / "piped")
    assert_close_runs(one, piped, tmp_path / "one", tmp_path / "piped", final_display)
    return piped


def test_fcn_tiny_on_two_stages_with_four_micro_batches_equals_iter_size_four(dataset, tmp_path):
    net = bind_data_sources(load_network("fcn_tiny", 3), dataset)
    for layer in net.layer:
        if layer.type == "Data":
            layer.data_param.batch_size = 1
    settings = load_solver("fcn_tiny")
    settings.max_iter, settings.display, settings.random_seed, settings.snapshot = 3, 1, 5, 0
    settings.ClearField("test_iter")
    settings.test_interval = 0
    # GPipe's order here (the default for M >= K is 1F1B, which the skip-connection test takes)
    assert_piped_equals_iter_size(net, settings, dataset, tmp_path, 4, pipeline_stages=2, micro_batches=4,
                                  pipeline_balance="parameters", pipeline_schedule="gpipe")
    # the cut that evens out the weights: after pool3 (72,080 and 56,022 values), not conv2_2 (FLOPs)
    stages = json.loads((tmp_path / "piped" / "pipeline.json").read_text())["stages"]
    assert [(stage["layers"][-1], stage["parameters"]) for stage in stages] == [("pool3", 72_080),
                                                                                ("loss", 56_022)]


def test_a_skip_connection_crosses_stages_with_1f1b_and_recompute(dataset, tmp_path):
    # the Crop at the end reads the input data: it travels through both later stages
    net = parse_net(NO_DROPOUT)
    settings = solver("max_iter: 3 display: 1 clip_gradients: 0.5")
    assert_piped_equals_iter_size(net, settings, dataset, tmp_path, 3, pipeline_stages=3, micro_batches=3,
                                  pipeline_cuts=("pool1", "score_fr"), pipeline_schedule="1f1b",
                                  recompute="1")


def test_two_replicas_of_two_stages_with_two_micro_batches_equal_iter_size_four(dataset, tmp_path):
    # replica r of 2 takes batches r, r+2, ... as data-parallel ranks do: the four batches of one
    # update are those of iter_size 4 on one process; the test passes are dealt to the replicas
    net = parse_net(NO_DROPOUT)
    settings = solver("max_iter: 3 display: 1 clip_gradients: 0.5 test_iter: 2 test_interval: 2")
    assert_piped_equals_iter_size(net, settings, dataset, tmp_path, 4, final_display=False, pipeline_stages=2,
                                  micro_batches=2, ranks=2, pipeline_cuts=("pool1",))
    tests = [[line for line in records(job) if line["phase"] == "val"] for job in (tmp_path / "one",
                                                                                   tmp_path / "piped")]
    assert [line["iteration"] for line in tests[1]] == [line["iteration"] for line in tests[0]] == [0, 2]
    for expected, got in zip(*tests, strict=True):
        assert got["confusion_matrix"] == expected["confusion_matrix"]
        np.testing.assert_allclose([got["loss"], got["accuracy"]], [expected["loss"], expected["accuracy"]],
                                   rtol=1e-5)


def test_a_stage_builds_the_whole_nets_fillers_but_holds_only_its_layers():
    whole = CaffeNet(parse_net(NO_DROPOUT), "train", input_shapes=SHAPES, seed=3)
    stage = CaffeNet(parse_net(NO_DROPOUT), "train", input_shapes=SHAPES, seed=3, keep={"conv2", "upscore"})
    assert_same_weights(stage.weights(), {name: whole.weights()[name] for name in ("conv2", "upscore")})
    held = [param.tensor.numel() for param in stage.learnable_params()]
    # conv1 w, b; conv2 w, b; score_fr w, b; upscore w (hand-counted)
    assert held == [0, 0, 16 * 8 * 9, 16, 0, 0, 3 * 1 * 4 * 4]
    assert "conv1" not in stage.blob_shapes() and stage.blob_shapes()["conv2"] == [(16, 8, 3, 3), (16,)]


def test_a_stage_loads_only_its_layers_from_a_whole_caffemodel(tmp_path):
    whole = CaffeNet(parse_net(NO_DROPOUT), "train", input_shapes=SHAPES, seed=3)
    write_caffemodel(tmp_path / "whole.caffemodel", whole.net_param, whole.weights())
    stage = CaffeNet(parse_net(NO_DROPOUT), "train", input_shapes=SHAPES, seed=4, keep={"conv1"})
    report = stage.load_weights(tmp_path / "whole.caffemodel")
    assert sorted(report.ignored) == ["conv2", "score_fr", "upscore"]
    assert_same_weights(stage.weights(), {"conv1": whole.weights()["conv1"]})


def test_a_loss_before_the_last_stage_is_refused(dataset, tmp_path):
    # an auxiliary loss after conv1: a cut after relu1's pool puts it in stage 0
    net = parse_net(NO_DROPOUT.replace(
        'layer { name: "pool1"',
        'layer { name: "aux" type: "EuclideanLoss" bottom: "conv1" bottom: "conv1" top: "aux" }\n'
        'layer { name: "pool1"'))
    config = TrainConfig(solver=solver("max_iter: 1"), net=net, device="cpu", dataset_root=dataset,
                         pipeline_stages=2, pipeline_cuts=("pool1",))
    with pytest.raises(UserError, match=r"layer 'aux' computes a loss \('aux'\) in pipeline stage 0, before"):
        train(config, tmp_path / "job")


def test_batchnorm_normalises_each_micro_batch_as_iter_size_does(dataset, tmp_path):
    # docs/DESIGN-NOTES.md: per-micro-batch statistics (GPipe), so the run equals iter_size M, the
    # stored mean/variance sums included (they are compared with the weights)
    net = parse_net(BATCHNORM)
    settings = solver("max_iter: 3 display: 1")
    piped = assert_piped_equals_iter_size(net, settings, dataset, tmp_path, 2, pipeline_stages=2,
                                          micro_batches=2, pipeline_cuts=("conv1",))
    # Caffe's scale factor s <- 0.999 s + 1 once per forward: 3 updates x 2 micro-batches = 6 forwards
    assert final_weights(piped)["bn1"][2][0] == pytest.approx((1 - 0.999 ** 6) / (1 - 0.999), rel=1e-6)


def test_replicas_keep_and_test_with_replica_0s_batchnorm_statistics(dataset, tmp_path):
    # two data-parallel ranks vs two replicas of two stages on the same batches: the snapshot holds
    # rank 0's statistics (DDP gives every rank rank 0's before each forward) and replica 0's
    net = parse_net(BATCHNORM)
    settings = solver("max_iter: 3 display: 2 test_iter: 2 test_interval: 3")
    ranks = train(TrainConfig(solver=settings, net=net, device="cpu", dataset_root=dataset, ranks=2),
                  tmp_path / "ranks")
    piped = train(TrainConfig(solver=settings, net=net, device="cpu", dataset_root=dataset, pipeline_stages=2,
                              ranks=2, pipeline_cuts=("conv1",)), tmp_path / "piped")
    assert_close_runs(ranks, piped, tmp_path / "ranks", tmp_path / "piped")
    # both replicas test with those statistics: the last test pass is what one process computes
    # from the final snapshot
    alone = TrainConfig(solver=with_iter_size(settings, 2), net=net, device="cpu", dataset_root=dataset,
                        resume=snapshot_files(tmp_path / "piped" / "snapshot", 3).solverstate)
    train(alone, tmp_path / "alone")
    tests = [[line for line in records(job) if line["phase"] == "val"][-1] for job in (tmp_path / "alone",
                                                                                       tmp_path / "piped")]
    assert tests[0]["iteration"] == tests[1]["iteration"] == 3
    got, expected = ([test["loss"], test["accuracy"]] for test in reversed(tests))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("piped", [{"pipeline_stages": 2, "micro_batches": 2},
                                   {"pipeline_stages": 2, "micro_batches": 1, "ranks": 2}],
                         ids=["two stages", "two stages in two replicas"])
def test_a_pipelined_snapshot_resumes_on_one_process_and_back(dataset, tmp_path, piped):
    # both take 2 batches per update: iter_size 2 on one process
    net = parse_net(NO_DROPOUT)

    def run(job: str, iterations: int, iter_size: int = 1, **options):
        settings = with_iter_size(solver(f"max_iter: {iterations} display: 1"), iter_size)
        config = TrainConfig(solver=settings, net=net, device="cpu", dataset_root=dataset, **options)
        return train(config, tmp_path / job)

    def state(job: str):
        return snapshot_files(tmp_path / job / "snapshot", 2).solverstate

    straight = run("straight", 4, 2)
    run("resumed", 2, **piped)
    resumed = run("resumed", 4, 2, resume=state("resumed"))
    assert_close_runs(straight, resumed, tmp_path / "straight", tmp_path / "resumed")
    # and a one-process snapshot continues on two stages
    run("back", 2, 2)
    back = run("back", 4, resume=state("back"), **piped)
    assert_close_runs(straight, back, tmp_path / "straight", tmp_path / "back", "ranks" not in piped)


@pytest.mark.parametrize(("options", "message"), [
    ({"nnodes": 2}, "leave out --nnodes"),
    ({"amp": "bf16"}, "--amp, --compile and --sync-batchnorm do not combine"),
    ({"micro_batches": 3, "iter_size": 2}, "iter_size 2 with --micro-batches 3"),
    ({"pipeline_schedule": "zigzag"}, "--pipeline-schedule zigzag"),
    ({"pipeline_schedule": "1f1b", "micro_batches": 1}, "1f1b with 2 stages needs at least 2 micro-batches"),
])
def test_pipelines_refuse_what_they_cannot_do(options, message):
    from digitslite.engine.pipeline.training import check_pipeline

    settings = with_iter_size(solver("max_iter: 1"), options.pop("iter_size", 1))
    config = TrainConfig(solver=settings, pipeline_stages=2, micro_batches=options.pop("micro_batches", 2),
                         **options)
    with pytest.raises(UserError, match=message):
        check_pipeline(config)


def test_a_process_count_that_is_not_whole_replicas_is_refused():
    from digitslite.engine.distributed import Ranks
    from digitslite.engine.pipeline.groups import StageGroups

    with pytest.raises(UserError, match=r"multiple of 2 processes .* but 3 were started; with --gpus"):
        StageGroups.join(Ranks(0, 3), 2)


def test_the_cli_trains_a_pipeline_and_lists_its_stage_processes(dataset, tmp_path):
    from click.testing import CliRunner

    from digitslite.cli import main

    net = tmp_path / "net.prototxt"
    net.write_text(NO_DROPOUT)
    job = tmp_path / "job"
    common = ["train", "--dataset", str(dataset), "--net", str(net), "--max-iter", "2", "--seed", "1",
              "--cpu"]
    done = CliRunner().invoke(main, [*common, "--pipeline-stages", "2", "--micro-batches", "2",
                                     "--ranks", "2", "--pipeline-cuts", "pool1", "-o", str(job), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["snapshots"] == [str(job / "snapshot_iter_2.caffemodel")]
    ranks = json.loads((job / "ranks.json").read_text())
    assert (ranks["status"], [rank["rank"] for rank in ranks["ranks"]]) == ("done", [0, 1, 2, 3])
    stages = json.loads((job / "pipeline.json").read_text())
    assert [stage["layers"][-1] for stage in stages["stages"]] == ["pool1", "loss"]
    # the labels and the Crop reference are net inputs: the last stage reads them from its own batch
    assert stages["stages"][1]["receives"] == ["pool1"]
    assert stages["stages"][1]["inputs"] == ["data_data_0_split_1", "label"]
    assert stages["replicas"] == 2 and [stage["device"] for stage in stages["stages"]] == ["cpu, cpu"] * 2
    assert stages["schedule"] == "1f1b"     # the default where M >= K
    assert stages["ideal_bubble"] == pytest.approx(1 / 3)     # (K − 1) / (M + K − 1), K = M = 2
    assert 0 <= stages["bubble"] < 1
    for stage in stages["stages"]:    # 2 updates, the first one a warm-up
        assert stage["updates"] == 1 and 0 < stage["busy_s"] <= stage["wall_s"]
    # what each stage process holds (measured there) is its layers' blobs: conv1 | conv2, score_fr,
    # upscore, counted by hand and by the partition table
    table = partition(runnable_net(parse_net(NO_DROPOUT), "train", stages=("train",)), cuts=("pool1",),
                      input_shapes=SHAPES)
    held = [stage["parameters"] for stage in stages["stages"]]
    by_hand = [8 * 27 + 8, 16 * 8 * 9 + 16 + 3 * 16 + 3 + 48]
    assert held == [stage.parameters for stage in table.stages] == by_hand
    assert [stage["parameter_bytes"] for stage in stages["stages"]] == [4 * count for count in held]
    alone = CliRunner().invoke(main, [*common, "--micro-batches", "2", "-o", str(tmp_path / "alone")])
    assert alone.exit_code == 1
    assert "--micro-batches and --pipeline-cuts go with --pipeline-stages" in alone.stderr


def test_stages_take_net_inputs_from_their_batch_and_send_gradients_only_where_they_flow():
    from digitslite.engine.pipeline.stages import carries_gradient, plan_train

    # a Power layer on the label computes a blob without a gradient that crosses the cut after pool1
    text = NO_DROPOUT.replace(
        'layer { name: "pool1"',
        'layer { name: "twice" type: "Power" bottom: "label" top: "twice" power_param { scale: 2 } }\n'
        'layer { name: "pool1"').replace(
        'layer { name: "loss"',
        'layer { name: "quiet" type: "Silence" bottom: "twice" }\nlayer { name: "loss"')
    runnable = runnable_net(parse_net(text), "train", stages=("train",))
    plans = plan_train(runnable, 2, ("pool1",), SHAPES)
    assert plans[0].receives == () and plans[0].inputs == (("data", "data"), ("label", "label"))
    assert plans[0].sends == plans[1].receives == ("twice", "pool1")
    assert plans[1].inputs == (("data_data_0_split_1", "data"), ("label_label_0_split_1", "label"))
    net = CaffeNet(parse_net(text), "train", input_shapes=SHAPES, seed=1)
    assert {"conv1", "pool1"} <= carries_gradient(net)
    assert not {"data", "label", "twice"} & carries_gradient(net)
