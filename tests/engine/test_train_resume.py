"""Kill -9 a real `digitslite train` process after a snapshot, resume it, and get the exact weights
of an uninterrupted run with the same seed."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from digitslite.cli import main
from digitslite.engine.snapshot import snapshot_files
from tests.engine.test_train_support import fcn_net, write_dataset

MAX_ITER = 60
DEADLINE_S = 120


def arguments(dataset: Path, net: Path, job: Path) -> list[str]:
    return ["train", "--dataset", str(dataset), "--net", str(net), "--cpu", "--seed", "3", "--base-lr", "0.1",
            "--max-iter", str(MAX_ITER), "--snapshot", "5", "--display", "5", "--test-interval", "10",
            "--test-iter", "1", "-o", str(job)]


def wait_for(path: Path, process: subprocess.Popen) -> None:
    """Wait until `path` exists (the condition), failing at the deadline or if the process ends."""
    deadline = time.monotonic() + DEADLINE_S
    while not path.exists():
        assert process.poll() is None, f"training ended before {path.name} appeared: {process.stderr.read()}"
        assert time.monotonic() < deadline, f"{path.name} did not appear within {DEADLINE_S} s"
        time.sleep(0.005)


def metrics(job: Path) -> list[dict]:
    lines = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
    return [{key: value for key, value in line.items() if key != "images_per_s"} for line in lines]


def test_sigkill_then_resume_gives_the_uninterrupted_weights(tmp_path):
    dataset = write_dataset(tmp_path / "dataset")
    net = tmp_path / "net.prototxt"
    net.write_text(fcn_net(crop=10))
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "digitslite", *arguments(dataset, net, killed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(snapshot_files(killed / "snapshot", 5).solverstate, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not snapshot_files(killed / "snapshot", MAX_ITER).solverstate.exists(), "the kill came too late"
    done = [n for n in range(5, MAX_ITER, 5) if snapshot_files(killed / "snapshot", n).solverstate.exists()]
    latest = snapshot_files(killed / "snapshot", max(done)).solverstate

    runner = CliRunner()
    resumed = runner.invoke(main, ["train", "--dataset", str(dataset), "--cpu", "--resume", str(latest),
                                   "-o", str(killed)])
    assert resumed.exit_code == 0, resumed.output
    reference = tmp_path / "reference"
    uninterrupted = runner.invoke(main, arguments(dataset, net, reference))
    assert uninterrupted.exit_code == 0, uninterrupted.output

    final = snapshot_files(killed / "snapshot", MAX_ITER)
    expected = snapshot_files(reference / "snapshot", MAX_ITER)
    assert final.caffemodel.read_bytes() == expected.caffemodel.read_bytes()
    assert final.solverstate.read_bytes() == expected.solverstate.read_bytes()
    assert metrics(killed) == metrics(reference)


def test_sigterm_snapshots_and_exits_cleanly(tmp_path):
    dataset = write_dataset(tmp_path / "dataset", train_count=8, val_count=4)
    net = tmp_path / "net.prototxt"
    net.write_text(fcn_net())
    job = tmp_path / "job"
    args = [*arguments(dataset, net, job), "--max-iter", "100000", "--json"]
    process = subprocess.Popen([sys.executable, "-m", "digitslite", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for(snapshot_files(job / "snapshot", 5).solverstate, process)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=DEADLINE_S)
    finally:
        process.kill()
    assert process.returncode == 0
    report = json.loads(out)
    assert report["stopped"] is True
    assert report["snapshots"][-1] == str(snapshot_files(job / "snapshot", report["iterations"]).caffemodel)
    assert snapshot_files(job / "snapshot", report["iterations"]).solverstate.is_file()
