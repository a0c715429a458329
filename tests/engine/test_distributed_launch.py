"""Launching the ranks of a node (digitslite.engine.launch) with real processes, without training:
torchrun's variables, teardown when one rank fails, stop requests, and ranks dying with a killed
launcher."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from digitslite.engine.launch import LocalRanks, RankEnvironment, RanksInterrupted, Rendezvous, parse_master
from digitslite.errors import UserError
from tests.engine.test_distributed_support import alive, kill_groups, wait_until

# A rank that reports its variables, starts a child in its process group (as a data loader worker
# is), and then does what its mode says: "wait" for a signal, "fail" once rank 0 is ready, or
# "stop" cleanly on SIGTERM.
RANK_SCRIPT = textwrap.dedent("""
    import json, os, signal, subprocess, sys, time
    from pathlib import Path
    from digitslite.engine.launch import die_with_parent
    die_with_parent()
    folder, mode = Path(sys.argv[1]), sys.argv[2]
    rank = int(os.environ["LOCAL_RANK"])
    if mode == "stop":
        stop = lambda *_: (Path(folder, f"stopped-{rank}").write_text(""), sys.exit(0))
        signal.signal(signal.SIGTERM, stop)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "EXTRA")
    report = {"pid": os.getpid(), "child": child.pid, "env": {name: os.environ.get(name) for name in names}}
    Path(folder, f".ready-{rank}").write_text(json.dumps(report))
    os.replace(Path(folder, f".ready-{rank}"), Path(folder, f"ready-{rank}"))
    if mode == "fail" and rank == 1:
        while not Path(folder, "ready-0").exists():
            time.sleep(0.01)
        sys.exit(3)
    while True:
        signal.pause()
""")


def ranks_command(tmp_path: Path, mode: str) -> list[str]:
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    return [sys.executable, str(script), str(tmp_path), mode]


def ready(tmp_path: Path, rank: int) -> dict:
    return json.loads((tmp_path / f"ready-{rank}").read_text())


def test_ranks_get_torchruns_variables_and_one_failure_takes_down_every_rank_and_its_children(tmp_path):
    rendezvous = Rendezvous(2, nnodes=3, node_rank=1, master_addr="10.0.0.1", master_port=29511)
    failure = r"local rank 1 \(pid \d+\) exited with code 3"
    with (LocalRanks(ranks_command(tmp_path, "fail"), rendezvous, [{"EXTRA": "a"}, {"EXTRA": "b"}]) as ranks,
          pytest.raises(RanksInterrupted, match=failure) as caught):
        ranks.wait()
    assert (caught.value.local_rank, caught.value.returncode) == (1, 3)
    reports = [ready(tmp_path, rank) for rank in range(2)]
    assert [report["env"] for report in reports] == [
        {"RANK": str(2 + local), "WORLD_SIZE": "6", "LOCAL_RANK": str(local), "LOCAL_WORLD_SIZE": "2",
         "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29511", "EXTRA": extra}
        for local, extra in enumerate("ab")]
    for report in reports:
        wait_until(lambda report=report: not alive(report["pid"]) and not alive(report["child"]),
                   f"the end of rank process {report['pid']} and its child")


def test_a_stop_request_reaches_every_rank_as_sigterm(tmp_path):
    started = lambda: all((tmp_path / f"ready-{rank}").exists() for rank in range(2))  # noqa: E731
    with LocalRanks(ranks_command(tmp_path, "stop"), Rendezvous(2), [{}, {}]) as ranks:
        ranks.wait(should_stop=started)
        assert [process.returncode for process in ranks.processes] == [0, 0]
    assert all((tmp_path / f"stopped-{rank}").exists() for rank in range(2))


def test_a_stop_that_kills_ranks_still_starting_is_a_stop_and_a_stray_sigterm_an_interruption(tmp_path):
    # "wait" ranks have no SIGTERM handler yet, as a rank still importing torch: the signal kills them.
    started = lambda: all((tmp_path / f"ready-{rank}").exists() for rank in range(2))  # noqa: E731
    with LocalRanks(ranks_command(tmp_path, "wait"), Rendezvous(2), [{}, {}]) as ranks:
        assert ranks.wait(should_stop=started) is False
    for report in (ready(tmp_path, rank) for rank in range(2)):
        wait_until(lambda report=report: not alive(report["pid"]) and not alive(report["child"]),
                   f"the end of rank process {report['pid']} and its child")

    for rank in range(2):
        (tmp_path / f"ready-{rank}").unlink()
    with (LocalRanks(ranks_command(tmp_path, "wait"), Rendezvous(2), [{}, {}]) as ranks,
          pytest.raises(RanksInterrupted, match=r"local rank 1 \(pid \d+\) was killed by SIGTERM")):
        wait_until(started, "the start")
        os.kill(ranks.pids[1], signal.SIGTERM)  # not from a stop request: someone else's signal
        ranks.wait(should_stop=lambda: False)


def test_ranks_die_with_a_sigkilled_launcher(tmp_path):
    launcher_code = ("import sys; from digitslite.engine.launch import LocalRanks, Rendezvous; "
                     "LocalRanks(sys.argv[1:], Rendezvous(2), [{}, {}]).wait()")
    launcher = subprocess.Popen([sys.executable, "-c", launcher_code, *ranks_command(tmp_path, "wait")],
                                start_new_session=True)
    pids = [launcher.pid]
    try:
        wait_until(lambda: all((tmp_path / f"ready-{rank}").exists() for rank in range(2)), "the start")
        pids += [ready(tmp_path, rank)["pid"] for rank in range(2)]
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait()
        for pid in pids[1:]:
            wait_until(lambda pid=pid: not alive(pid), f"the end of rank process {pid}")
    finally:
        kill_groups(pids)


def test_the_rank_environment_is_read_as_torchrun_writes_it():
    assert RankEnvironment.from_environ({}) is None
    variables = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                 "MASTER_ADDR": "node0", "MASTER_PORT": "29500"}
    env = RankEnvironment.from_environ(variables)
    assert env == RankEnvironment(3, 4, 1, 2, "node0", 29500)
    assert RankEnvironment.from_environ(env.variables()) == env
    with pytest.raises(UserError, match="MASTER_ADDR and MASTER_PORT not set"):
        RankEnvironment.from_environ({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(UserError, match="RANK is 2 but WORLD_SIZE is 2"):
        RankEnvironment.from_environ({"RANK": "2", "WORLD_SIZE": "2"})
    assert parse_master("[::1]:29500") == ("::1", 29500)
    with pytest.raises(UserError, match="ADDR:PORT"):
        parse_master("node0")
