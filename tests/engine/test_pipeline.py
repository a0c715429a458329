"""Pipeline-parallel training: K stages x M micro-batches update as one process with iter_size M.

Tolerance: the stages add the same float32 gradients in the same order as one process; only the
clipping norm (summed per stage, then over the stages) is added up in another order, so losses
agree to 1e-5 relative and weights to 1e-6 absolute.
"""
import numpy as np
import pytest

from digitslite.caffe.deploy import bind_data_sources
from digitslite.caffe.prototxt import parse_net
from digitslite.engine.dispatch import train
from digitslite.engine.snapshot import snapshot_files
from digitslite.engine.train import TrainConfig
from digitslite.errors import UserError
from digitslite.networks import load_network, load_solver
from tests.engine.test_train import final_weights, records, solver
from tests.engine.test_train_support import fcn_net, write_dataset

NO_DROPOUT = fcn_net().replace("dropout_ratio: 0.1", "dropout_ratio: 0.0")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("pipeline_dataset"))


def assert_close_runs(one, piped, one_job, piped_job) -> None:
    losses = [[line["loss"] for line in records(job) if line["phase"] == "train"]
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


def test_fcn_tiny_on_two_stages_with_four_micro_batches_equals_iter_size_four(dataset, tmp_path):
    net = bind_data_sources(load_network("fcn_tiny", 3), dataset)
    for layer in net.layer:
        if layer.type == "Data":
            layer.data_param.batch_size = 1
    settings = load_solver("fcn_tiny")
    settings.max_iter, settings.display, settings.random_seed, settings.snapshot = 3, 1, 5, 0
    settings.ClearField("test_iter")
    settings.test_interval = 0
    one = train(TrainConfig(solver=with_iter_size(settings, 4), net=net, device="cpu", dataset_root=dataset),
                tmp_path / "one")
    piped = train(TrainConfig(solver=settings, net=net, device="cpu", dataset_root=dataset, pipeline_stages=2,
                              micro_batches=4), tmp_path / "piped")
    assert_close_runs(one, piped, tmp_path / "one", tmp_path / "piped")


def test_a_skip_connection_crosses_stages_with_1f1b_and_recompute(dataset, tmp_path):
    # the Crop at the end reads the input data: it travels through both later stages
    net = parse_net(NO_DROPOUT)
    settings = solver("max_iter: 3 display: 1 clip_gradients: 0.5")
    one = train(TrainConfig(solver=with_iter_size(settings, 3), net=net, device="cpu", dataset_root=dataset),
                tmp_path / "one")
    piped = train(TrainConfig(solver=settings, net=net, device="cpu", dataset_root=dataset, pipeline_stages=3,
                              micro_batches=3, pipeline_cuts=("pool1", "score_fr"), pipeline_schedule="1f1b",
                              recompute="1"), tmp_path / "piped")
    assert_close_runs(one, piped, tmp_path / "one", tmp_path / "piped")


def test_batchnorm_normalises_each_micro_batch_as_iter_size_does(dataset, tmp_path):
    # docs/DESIGN-NOTES.md: per-micro-batch statistics (GPipe), so the run equals iter_size M, the
    # stored mean/variance sums included (they are compared with the weights)
    net = parse_net(NO_DROPOUT.replace(
        'layer { name: "relu1"',
        'layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }\n'
        'layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1"\n'
        '  scale_param { bias_term: true } }\n'
        'layer { name: "relu1"'))
    settings = solver("max_iter: 3 display: 1")
    one = train(TrainConfig(solver=with_iter_size(settings, 2), net=net, device="cpu", dataset_root=dataset),
                tmp_path / "one")
    piped = train(TrainConfig(solver=settings, net=net, device="cpu", dataset_root=dataset, pipeline_stages=2,
                              micro_batches=2, pipeline_cuts=("conv1",)), tmp_path / "piped")
    assert_close_runs(one, piped, tmp_path / "one", tmp_path / "piped")
    # Caffe's scale factor s <- 0.999 s + 1 once per forward: 3 updates x 2 micro-batches = 6 forwards
    assert final_weights(piped)["bn1"][2][0] == pytest.approx((1 - 0.999 ** 6) / (1 - 0.999), rel=1e-6)


def test_a_pipelined_snapshot_resumes_on_one_process_and_back(dataset, tmp_path):
    net = parse_net(NO_DROPOUT)

    def run(job: str, iterations: int, iter_size: int = 1, **options):
        settings = with_iter_size(solver(f"max_iter: {iterations} display: 1"), iter_size)
        config = TrainConfig(solver=settings, net=net, device="cpu", dataset_root=dataset, **options)
        return train(config, tmp_path / job)

    def state(job: str):
        return snapshot_files(tmp_path / job / "snapshot", 2).solverstate

    piped = {"pipeline_stages": 2, "micro_batches": 2}
    straight = run("straight", 4, 2)
    run("resumed", 2, **piped)
    resumed = run("resumed", 4, 2, resume=state("resumed"))
    assert_close_runs(straight, resumed, tmp_path / "straight", tmp_path / "resumed")
    # and a one-process snapshot continues on two stages
    run("back", 2, 2)
    back = run("back", 4, resume=state("back"), **piped)
    assert_close_runs(straight, back, tmp_path / "straight", tmp_path / "back")


@pytest.mark.parametrize(("options", "message"), [
    ({"ranks": 2}, "data-parallel ranks"),
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


def test_the_cli_trains_a_pipeline_and_lists_its_stage_processes(dataset, tmp_path):
    import json

    from click.testing import CliRunner

    from digitslite.cli import main

    net = tmp_path / "net.prototxt"
    net.write_text(NO_DROPOUT)
    job = tmp_path / "job"
    common = ["train", "--dataset", str(dataset), "--net", str(net), "--max-iter", "2", "--seed", "1",
              "--cpu"]
    done = CliRunner().invoke(main, [*common, "--pipeline-stages", "2", "--micro-batches", "2",
                                     "--pipeline-cuts", "pool1", "-o", str(job), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["snapshots"] == [str(job / "snapshot_iter_2.caffemodel")]
    ranks = json.loads((job / "ranks.json").read_text())
    assert (ranks["status"], [rank["rank"] for rank in ranks["ranks"]]) == ("done", [0, 1])
    stages = json.loads((job / "pipeline.json").read_text())
    assert [stage["layers"][-1] for stage in stages["stages"]] == ["pool1", "loss"]
    assert stages["stages"][1]["receives"] == ["data_data_0_split_1", "label", "pool1"]
    assert stages["ideal_bubble"] == pytest.approx(1 / 3)     # (K − 1) / (M + K − 1), K = M = 2
    assert 0 <= stages["bubble"] < 1
    for stage in stages["stages"]:    # 2 updates, the first one a warm-up
        assert stage["updates"] == 1 and 0 < stage["busy_s"] <= stage["wall_s"]
    alone = CliRunner().invoke(main, [*common, "--micro-batches", "2", "-o", str(tmp_path / "alone")])
    assert alone.exit_code == 1
    assert "--micro-batches and --pipeline-cuts go with --pipeline-stages" in alone.stderr
