"""Data-parallel training on CPU ranks with gloo, in real processes: 2 ranks update like one process
with the doubled batch (iter_size, clipping, weight decay, metrics, synchronised BatchNorm), whether
on one node, on two nodes meeting at a master, or started by torchrun; snapshots resume on another
rank count; a stop request stops every rank together; a rank that dies interrupts them all."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from digitslite.caffe.prototxt import parse_net, parse_solver
from digitslite.cli import main
from digitslite.engine.dispatch import train
from digitslite.engine.launch import EXIT_INTERRUPTED, RanksInterrupted, free_port
from digitslite.engine.rank_training import train_on_local_ranks
from digitslite.engine.snapshot import read_snapshot, snapshot_files
from digitslite.engine.train import TrainConfig
from digitslite.errors import UserError
from tests.engine.test_distributed_support import (
    DEADLINE_S,
    SOLVER,
    alive,
    assert_weights_close,
    children,
    equivalence_net,
    group_members,
    kill_groups,
    wait_until,
)
from tests.engine.test_train_support import write_dataset

SETTINGS = SOLVER + "max_iter: 6 snapshot: 3 display: 2 test_interval: 3 iter_size: 2 "


def records(job: Path) -> list[dict]:
    return [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]


def without_timing(lines: list[dict]) -> list[dict]:
    return [{key: value for key, value in line.items() if key != "images_per_s"} for line in lines]


def assert_records_close(a: list[dict], b: list[dict]) -> None:
    """The same metrics lines, numbers within float32 rounding of a different summation order."""
    assert [(x["phase"], x["iteration"]) for x in a] == [(y["phase"], y["iteration"]) for y in b]
    for x, y in zip(without_timing(a), without_timing(b), strict=True):
        assert x.keys() == y.keys()
        for key in x.keys() - {"phase"}:
            np.testing.assert_allclose(np.asarray(x[key], dtype=float), np.asarray(y[key], dtype=float),
                                       rtol=1e-5, atol=1e-6, err_msg=key)


def config(dataset: Path, batch: int, test_iter: int, **launch) -> TrainConfig:
    return TrainConfig(solver=parse_solver(SETTINGS + f"test_iter: {test_iter}"),
                       net=parse_net(equivalence_net(batch)), device="cpu", dataset_root=dataset, **launch)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("dataset"))


def write_inputs(folder: Path, net: str, solver: str) -> list[str]:
    """The net and solver as files, as command-line options."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net.prototxt").write_text(net)
    (folder / "solver.prototxt").write_text(solver)
    return ["--net", str(folder / "net.prototxt"), "--solver", str(folder / "solver.prototxt")]


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


@pytest.fixture(scope="module")
def runs(dataset, tmp_path_factory) -> dict:
    """One process with batch 4, and 2 ranks with batch 2 each; iter_size 2; 2 test passes of 4
    images against 4 of 2, so that both test on the same 8 images."""
    root = tmp_path_factory.mktemp("runs")
    train(config(dataset, 4, 2), root / "one")
    relayed: list[dict] = []
    result = train(config(dataset, 2, 4, ranks=2), root / "two", progress=relayed.append)
    return {"one": root / "one", "two": root / "two", "result": result, "relayed": relayed}


def test_two_ranks_update_like_one_process_with_the_doubled_batch(runs):
    for iteration in (3, 6):
        one, two = (snapshot_files(runs[name] / "snapshot", iteration) for name in ("one", "two"))
        assert_weights_close(one.caffemodel, two.caffemodel)
        for a, b in zip(read_snapshot(one.solverstate).history, read_snapshot(two.solverstate).history,
                        strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    expected = [snapshot_files(runs["two"] / "snapshot", n).caffemodel for n in (3, 6)]
    assert runs["result"].snapshots == expected


def test_metrics_are_reduced_over_the_ranks_and_written_once_by_rank_0(runs):
    two = records(runs["two"])
    assert_records_close(two, records(runs["one"]))
    assert without_timing(runs["relayed"]) == without_timing(two)
    assert sum(1 for line in two if line["phase"] == "val") == 3
    status = json.loads((runs["two"] / "ranks.json").read_text())
    assert (status["status"], status["world_size"], status["reason"]) == ("done", 2, None)
    assert len({rank["pid"] for rank in status["ranks"]}) == 2
    assert sorted(path.name for path in runs["two"].glob("*.caffemodel")) == [
        "snapshot_iter_3.caffemodel", "snapshot_iter_6.caffemodel"]


def test_a_two_rank_snapshot_resumes_on_one_rank(runs, dataset, tmp_path):
    snapshot = snapshot_files(runs["two"] / "snapshot", 3).solverstate
    doubled = train(config(dataset, 4, 2, resume=snapshot), tmp_path / "doubled")
    assert_weights_close(doubled.snapshots[-1], snapshot_files(runs["one"] / "snapshot", 6).caffemodel)
    assert_records_close(records(tmp_path / "doubled"), [line for line in records(runs["one"])
                                                         if line["iteration"] >= 3])
    # With the per-rank batch kept, the one rank continues the sample sequence where the two stopped:
    # 3 updates of 2 ranks x 2 images x iter_size 2, then 3 of 1 x 2 x 2.
    halved = train(config(dataset, 2, 4, resume=snapshot), tmp_path / "halved")
    assert read_snapshot(halved.snapshots[-1]).extra["feeds"]["train"] == 3 * 8 + 3 * 4


BATCH_NORM = """
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1\""""


def test_synchronised_batch_norm_on_two_nodes_normalises_over_the_batches_of_all_ranks(dataset, tmp_path):
    """Two nodes of one rank each, meeting at a master: node 0 launched by the API in this process,
    node 1 by the command. Only rank 0 writes the job folder."""
    def bn_net(batch: int) -> str:
        return equivalence_net(batch).replace('\nlayer { name: "relu1"', BATCH_NORM, 1)

    settings = SOLVER + "max_iter: 4"
    one = train(TrainConfig(solver=parse_solver(settings), net=parse_net(bn_net(4)), device="cpu",
                            dataset_root=dataset), tmp_path / "one")
    master = f"127.0.0.1:{free_port()}"
    inputs = write_inputs(tmp_path, bn_net(2), settings)
    node1 = start(["digitslite", "train", "--dataset", str(dataset), *inputs, "--cpu", "--sync-batchnorm",
                   "--nnodes", "2", "--node-rank", "1", "--master", master, "-o", str(tmp_path / "node1"),
                   "--json"])
    try:
        node0 = TrainConfig(solver=parse_solver(settings), net=parse_net(bn_net(2)), device="cpu",
                            dataset_root=dataset, sync_batchnorm=True, nnodes=2, node_rank=0, master=master)
        two = train(node0, tmp_path / "node0")
        out, err = node1.communicate(timeout=DEADLINE_S)
    finally:
        kill_groups([node1.pid])
    assert_weights_close(one.snapshots[-1], two.snapshots[-1])
    assert node1.returncode == 0, err
    assert json.loads(out) == {"iterations": 4, "stopped": False, "loss": pytest.approx(two.loss),
                               "snapshots": [], "metrics": None}
    assert not list((tmp_path / "node1").glob("*.caffemodel"))
    assert not (tmp_path / "node1" / "metrics.jsonl").exists()
    status = json.loads((tmp_path / "node1" / "ranks.json").read_text())
    assert [(rank["rank"], rank["local_rank"]) for rank in status["ranks"]] == [(1, 0)]
    assert (status["nnodes"], status["node_rank"], status["world_size"]) == (2, 1, 2)


def cli_args(dataset: Path, net: Path, job: Path, *extra: str) -> list[str]:
    return ["train", "--dataset", str(dataset), "--net", str(net), "--cpu", "--seed", "5", "--base-lr", "0.1",
            "--clip-gradients", "0.5", "--snapshot", "2", "--display", "0", "-o", str(job), *extra]


def rank_pids(job: Path) -> list[int]:
    return [rank["pid"] for rank in json.loads((job / "ranks.json").read_text())["ranks"]]


def test_stop_kill_and_resume_on_fewer_ranks_end_with_the_weights_of_an_uninterrupted_run(dataset, tmp_path):
    net = tmp_path / "net.prototxt"
    net.write_text(equivalence_net(4))
    job = tmp_path / "job"
    # A stop request (SIGTERM to a worker): the ranks agree on an iteration, rank 0 snapshots, all end.
    first = snapshot_files(job / "snapshot", 2).solverstate
    endless = TrainConfig(solver=parse_solver(SOLVER + "max_iter: 100000 snapshot: 2"),
                          net=parse_net(equivalence_net(2)), device="cpu", dataset_root=dataset, ranks=2)
    stopped = train(endless, job, should_stop=first.exists)
    assert stopped.stopped
    assert stopped.snapshots[-1] == snapshot_files(job / "snapshot", stopped.iterations).caffemodel
    assert json.loads((job / "ranks.json").read_text())["status"] == "stopped"

    # Resumed by the command on 2 ranks, then one rank is killed: every rank and data loader worker
    # goes, and the command ends with the code of an interrupted run.
    target = stopped.iterations + (2 - stopped.iterations % 2) + 2
    resumed_from = snapshot_files(job / "snapshot", stopped.iterations).solverstate
    process = start(["digitslite", *cli_args(dataset, net, job, "--ranks", "2", "--batch-size", "2",
                                             "--workers", "1", "--max-iter", "100000", "--resume",
                                             str(resumed_from))])
    started = [process.pid]
    try:
        wait_until(snapshot_files(job / "snapshot", target).solverstate.exists, f"snapshot {target}")
        ranks = rank_pids(job)
        started += ranks
        members = [pid for rank in ranks for pid in group_members(rank)]
        assert len(members) == 4, "each rank runs with one data loader worker"
        os.kill(ranks[1], signal.SIGKILL)
        _, err = process.communicate(timeout=DEADLINE_S)
        assert process.returncode == EXIT_INTERRUPTED
        assert f"interrupted: rank 1 (pid {ranks[1]}) was killed by SIGKILL" in err
        status = json.loads((job / "ranks.json").read_text())
        assert status["status"] == "interrupted" and "resume" in status["reason"]
        for pid in members:
            wait_until(lambda pid=pid: not alive(pid), f"the end of process {pid}")
    finally:
        kill_groups(started)

    # Resumed once more, on 1 rank with the doubled batch: the weights of a run never interrupted.
    end = target + 4
    runner = CliRunner()
    finished = runner.invoke(main, [*cli_args(dataset, net, job, "--max-iter", str(end)),
                                    "--resume", str(snapshot_files(job / "snapshot", target).solverstate)])
    assert finished.exit_code == 0, finished.output
    reference = runner.invoke(main, cli_args(dataset, net, tmp_path / "reference", "--max-iter", str(end)))
    assert reference.exit_code == 0, reference.output
    assert_weights_close(snapshot_files(job / "snapshot", end).caffemodel,
                         snapshot_files(tmp_path / "reference" / "snapshot", end).caffemodel)


def test_under_torchrun_each_process_is_one_rank(runs, dataset, tmp_path):
    job = tmp_path / "job"
    inputs = write_inputs(tmp_path, equivalence_net(2), SETTINGS + "test_iter: 4")
    process = start(["torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "digitslite",
                     "train", "--dataset", str(dataset), *inputs, "--cpu", "-o", str(job)])
    try:
        _, err = process.communicate(timeout=DEADLINE_S)
    finally:
        kill_groups([process.pid, *children(process.pid)])
    assert process.returncode == 0, err
    assert not (job / "ranks.json").exists(), "torchrun started the ranks: digitslite must not start more"
    assert_weights_close(snapshot_files(job / "snapshot", 6).caffemodel,
                         snapshot_files(runs["one"] / "snapshot", 6).caffemodel)
    assert_records_close(records(job), records(runs["one"]))


def test_a_rank_refusing_its_input_fails_the_run_with_its_message(dataset, tmp_path):
    with pytest.raises(UserError, match=r"layer 'data'.*not an LMDB folder"):
        train(config(tmp_path / "missing", 2, 4, ranks=2), tmp_path / "job")
    status = json.loads((tmp_path / "job" / "ranks.json").read_text())
    assert status["status"] == "failed" and "not an LMDB folder" in status["reason"]


def test_the_command_reports_a_ranks_refusal_as_its_one_error_line(dataset, tmp_path):
    net = tmp_path / "net.prototxt"
    net.write_text(equivalence_net(2))
    process = start(["digitslite", *cli_args(tmp_path / "missing", net, tmp_path / "job", "--ranks", "2",
                                             "--max-iter", "2")])
    try:
        _, err = process.communicate(timeout=DEADLINE_S)
    finally:
        kill_groups([process.pid])
    assert process.returncode == 1
    assert json.loads((tmp_path / "job" / "ranks.json").read_text())["status"] == "failed"  # by a rank
    (line,) = err.splitlines()   # not torch's log of the failed rank above it
    assert line.startswith("error: layer 'data'") and "not an LMDB folder" in line


def crash_on_rank_1(config: TrainConfig, job_dir: Path, *, should_stop, progress) -> None:
    """A rank's training that fails with a bug on rank 1, while rank 0 waits for the others."""
    if os.environ["RANK"] == "1":
        raise RuntimeError("a bug in rank 1")
    while True:
        signal.pause()


def test_a_crashed_rank_interrupts_the_run_with_its_traceback_printed_once(dataset, tmp_path, capfd):
    with pytest.raises(RanksInterrupted, match=r"rank 1 \(pid \d+\) failed with RuntimeError: a bug in rank"):
        train_on_local_ranks(config(dataset, 2, 4, ranks=2), tmp_path, None, None, crash_on_rank_1)
    err = capfd.readouterr().err
    assert err.count("Traceback (most recent call last)") == 1
    assert err.count("RuntimeError: a bug in rank 1") == 1
    assert err.startswith("rank 1 failed:\nTraceback") and 'in crash_on_rank_1\n' in err
    assert json.loads((tmp_path / "ranks.json").read_text())["status"] == "interrupted"
