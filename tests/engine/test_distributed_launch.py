"""Launching the ranks of a node (digitslite.engine.local_ranks) with real processes, without
training: torchrun's variables, what the ranks return, teardown when one rank fails, stop requests,
and ranks dying with a killed launcher."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from digitslite.engine.launch import RankEnvironment, RanksInterrupted, Rendezvous, parse_master
from digitslite.engine.local_ranks import LocalRanks
from digitslite.errors import UserError
from tests.engine.test_distributed_support import alive, kill_groups, wait_until

VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "EXTRA")


def rank(folder: Path, mode: str) -> dict:
    """A rank that reports its variables, starts a child in its process group (as a data loader worker
    is), and then does what its mode says: "wait" for a signal, "deaf": wait ignoring SIGTERM (as a
    rank blocked in a collective), "fail" once rank 0 is ready, "raise" an error at once, "stop"
    cleanly on SIGTERM, or "return" its report."""
    local = int(os.environ["LOCAL_RANK"])
    if mode == "stop":
        signal.signal(signal.SIGTERM, lambda *_: Path(folder, f"stopped-{local}").write_text(""))
    if mode == "deaf":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if mode == "raise":
        raise UserError(f"local rank {local} refuses")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    variables = {name: os.environ.get(name) for name in VARIABLES}
    report = {"pid": os.getpid(), "child": child.pid, "env": variables, "threads": torch.get_num_threads()}
    Path(folder, f".ready-{local}").write_text(json.dumps(report))
    os.replace(Path(folder, f".ready-{local}"), Path(folder, f"ready-{local}"))
    if mode == "return":
        child.kill()
        child.wait()
        return report
    if mode == "fail" and local == 1:
        while not Path(folder, "ready-0").exists():
            time.sleep(0.01)
        sys.exit(3)
    while not Path(folder, f"stopped-{local}").exists():
        signal.pause()
    child.kill()
    child.wait()
    return None


def ready(tmp_path: Path, local: int) -> dict:
    return json.loads((tmp_path / f"ready-{local}").read_text())


def started(tmp_path: Path) -> bool:
    return all((tmp_path / f"ready-{local}").exists() for local in range(2))


def stop_request(signum, frame) -> None:
    """The caller's own SIGTERM handler (the CLI's, the worker's)."""


def test_ranks_get_torchruns_variables_and_their_results_come_back(tmp_path):
    rendezvous = Rendezvous(2, nnodes=3, node_rank=1, master_addr="10.0.0.1", master_port=29511)
    previous = signal.signal(signal.SIGTERM, stop_request)
    try:
        extra = [{"EXTRA": "a", "OMP_NUM_THREADS": "1"}, {"EXTRA": "b", "OMP_NUM_THREADS": "3"}]
        with LocalRanks(rank, (tmp_path, "return"), rendezvous, extra) as ranks:
            # torch's start_processes installs its own handler: the caller's must be back, unblocked.
            assert signal.getsignal(signal.SIGTERM) is stop_request
            assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
            reports = ranks.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert [report["env"] for report in reports] == [
        {"RANK": str(2 + local), "WORLD_SIZE": "6", "LOCAL_RANK": str(local), "LOCAL_WORLD_SIZE": "2",
         "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29511", "EXTRA": extra}
        for local, extra in enumerate("ab")]
    # torch sets the variables after its import in the rank: the thread count must still take effect.
    assert [report["threads"] for report in reports] == [1, 3]
    assert [report["pid"] for report in reports] == ranks.pids


def test_one_failure_takes_down_every_rank_and_its_children(tmp_path):
    failure = r"local rank 1 \(pid \d+\) exited with code 3"
    with (LocalRanks(rank, (tmp_path, "fail"), Rendezvous(2), [{}, {}]) as ranks,
          pytest.raises(RanksInterrupted, match=failure) as caught):
        ranks.wait()
    assert (caught.value.local_rank, caught.value.returncode, caught.value.raised) == (1, 3, None)
    for report in (ready(tmp_path, local) for local in range(2)):
        wait_until(lambda report=report: not alive(report["pid"]) and not alive(report["child"]),
                   f"the end of rank process {report['pid']} and its child")


def test_a_failure_kills_the_other_ranks_at_once_even_those_deaf_to_sigterm(tmp_path):
    # torch's own teardown would SIGTERM the deaf rank and SIGKILL it only 30 s later.
    with (LocalRanks(rank, (tmp_path, "deaf"), Rendezvous(2), [{}, {}]) as ranks,
          pytest.raises(RanksInterrupted, match=r"local rank 1 \(pid \d+\) was killed by SIGKILL")):
        wait_until(lambda: started(tmp_path), "the start")
        os.kill(ranks.pids[1], signal.SIGKILL)
        killed = time.monotonic()
        try:
            ranks.wait()
        finally:
            ended_after = time.monotonic() - killed
    assert ended_after < 15, f"the launcher took {ended_after:.1f} s to end the deaf rank"
    for report in (ready(tmp_path, local) for local in range(2)):
        wait_until(lambda report=report: not alive(report["pid"]) and not alive(report["child"]),
                   f"the end of rank process {report['pid']} and its child")


def test_the_error_a_rank_raised_comes_back_with_its_type(tmp_path):
    with (LocalRanks(rank, (tmp_path, "raise"), Rendezvous(2), [{}, {}]) as ranks,
          pytest.raises(RanksInterrupted, match=r"exited with code 1") as caught):
        ranks.wait()
    assert caught.value.raised == f"UserError: local rank {caught.value.local_rank} refuses"


def test_a_stop_request_reaches_every_rank_as_sigterm(tmp_path):
    with LocalRanks(rank, (tmp_path, "stop"), Rendezvous(2), [{}, {}]) as ranks:
        assert ranks.wait(should_stop=lambda: started(tmp_path)) == [None, None]
    assert all((tmp_path / f"stopped-{local}").exists() for local in range(2))


def test_a_stop_that_kills_ranks_still_starting_is_a_stop_and_a_stray_sigterm_an_interruption(tmp_path):
    # "wait" ranks have no SIGTERM handler, as a rank still importing torch: the signal kills them.
    with LocalRanks(rank, (tmp_path, "wait"), Rendezvous(2), [{}, {}]) as ranks:
        assert ranks.wait(should_stop=lambda: started(tmp_path)) is None
    for report in (ready(tmp_path, local) for local in range(2)):
        wait_until(lambda report=report: not alive(report["pid"]) and not alive(report["child"]),
                   f"the end of rank process {report['pid']} and its child")

    for local in range(2):
        (tmp_path / f"ready-{local}").unlink()
    with (LocalRanks(rank, (tmp_path, "wait"), Rendezvous(2), [{}, {}]) as ranks,
          pytest.raises(RanksInterrupted, match=r"local rank 1 \(pid \d+\) was killed by SIGTERM")):
        wait_until(lambda: started(tmp_path), "the start")
        os.kill(ranks.pids[1], signal.SIGTERM)  # not from a stop request: someone else's signal
        ranks.wait(should_stop=lambda: False)


def test_ranks_die_with_a_sigkilled_launcher(tmp_path):
    launcher_code = ("import sys; from pathlib import Path; from digitslite.engine.launch import Rendezvous; "
                     "from digitslite.engine.local_ranks import LocalRanks; "
                     "from tests.engine.test_distributed_launch import rank; "
                     "LocalRanks(rank, (Path(sys.argv[1]), 'wait'), Rendezvous(2), [{}, {}]).wait()")
    launcher = subprocess.Popen([sys.executable, "-c", launcher_code, str(tmp_path)], start_new_session=True)
    pids = [launcher.pid]
    try:
        wait_until(lambda: started(tmp_path), "the start")
        pids += [ready(tmp_path, local)["pid"] for local in range(2)]
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
