"""Kill tests: a worker outlives its server, a killed worker's job resumes to the same weights, and
killing the server at random moments leaves every job record readable."""
import contextlib
import http.client
import json
import os
import random
import re
import signal
import threading
from pathlib import Path

import numpy as np

from digitslite.caffe.caffemodel import read_weights
from digitslite.jobs.index import JobFilter, JobIndex
from tests.server.harness import (
    TERMINAL,
    Server,
    created_id,
    dataset_request,
    model_request,
    wait_for,
)


def _dataset(client, demo) -> str:
    dataset_id = created_id(client.post("/api/v1/datasets", dataset_request(demo)))
    assert client.wait_status(dataset_id)["status"] == "done"
    return dataset_id


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except OSError:
        return False


def _freeze(pid: int) -> None:
    """SIGSTOP `pid` and wait until it is stopped: it runs no more code, and dies only of SIGKILL
    (or of a signal it has no handler for)."""
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "T", 30, f"{pid} to stop")


def _handles_sigterm(pid: int) -> bool:
    """Whether `pid` has a handler for SIGTERM (bit 14 of SigCgt in /proc/PID/status)."""
    caught = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1)


def _trained_since_resume(client, job_id: str, snapshot: str) -> int:
    """The last iteration the job's log reports after "resuming from `snapshot`" (-1: none yet): only
    the resumed run logs there, whatever the metrics file of the run before still says."""
    log = client.get(f"/api/v1/jobs/{job_id}/log").body.decode()
    _, resumed, after = log.rpartition(f"resuming from {snapshot}\n")
    return max((int(n) for n in re.findall(r"^Iteration (\d+),", after, re.M)), default=-1) if resumed else -1


def _last_iteration(jobs_dir: Path, job_id: str) -> int:
    path = jobs_dir / job_id / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return json.loads(lines[-1])["iteration"] if lines else -1


def test_worker_outlives_a_killed_server_and_a_new_server_reattaches(site):
    jobs_dir, roots, demo = site
    server = Server(jobs_dir, roots).start()
    client = server.client()
    model_id = created_id(client.post("/api/v1/models", model_request(
        _dataset(client, demo), max_iter=100000, display=5, snapshot_interval=10, batch_size=1)))
    wait_for(lambda: _last_iteration(jobs_dir, model_id) >= 10, 120, "training to get going")
    pid = client.job(model_id)["run"]["pid"]

    server.kill()
    seen = _last_iteration(jobs_dir, model_id)
    wait_for(lambda: _last_iteration(jobs_dir, model_id) > seen + 10, 120, "training to go on serverless")
    assert _alive(pid)

    server = Server(jobs_dir, roots).start()
    client = server.client()
    job = client.job(model_id)
    assert job["status"] == "running" and job["run"]["pid"] == pid and job["run"]["runs"] == 1
    # The re-attached worker is still under control: abort reaches it, and it snapshots on the way out.
    assert client.post(f"/api/v1/jobs/{model_id}/abort").status == 202
    job = client.wait_status(model_id)
    assert job["status"] == "aborted" and job["snapshots"]
    wait_for(lambda: not _alive(pid), 30, "the worker to exit")
    stopped_at = _last_iteration(jobs_dir, model_id)
    assert job["snapshots"][-1]["iteration"] >= stopped_at - 1
    server.kill()


def test_killed_worker_is_interrupted_and_resumes_to_the_same_weights(site):
    jobs_dir, roots, demo = site
    server = Server(jobs_dir, roots).start()
    client = server.client()
    dataset_id = _dataset(client, demo)
    request = model_request(dataset_id, max_iter=120, snapshot_interval=20, display=2)
    reference = created_id(client.post("/api/v1/models", request))
    victim = created_id(client.post("/api/v1/models", request))
    victim_dir = jobs_dir / victim

    # First death while the server watches.
    pid = client.wait_status(victim, "running")["run"]["pid"]
    wait_for(lambda: (victim_dir / "snapshot_iter_20.solverstate").exists()
             and _last_iteration(jobs_dir, victim) > 24, 180, "the victim to pass its first snapshot")
    os.killpg(pid, signal.SIGKILL)
    job = client.wait_status(victim)
    assert job["status"] == "interrupted" and "SIGKILL" in job["error"]["message"]
    assert client.post(f"/api/v1/jobs/{victim}/resume").status == 202

    # Second death while no server runs: the next server finds the worker gone and says so.
    pid = client.wait_status(victim, "running", timeout=180)["run"]["pid"]
    assert client.job(victim)["run"]["runs"] == 2
    wait_for(lambda: _last_iteration(jobs_dir, victim) > 64
             and (victim_dir / "snapshot_iter_60.solverstate").exists(), 180, "the resumed run to pass 64")
    _freeze(pid)   # it must not finish its last iterations while the server goes down
    server.kill()
    os.killpg(pid, signal.SIGKILL)
    server = Server(jobs_dir, roots).start()
    client = server.client()
    job = client.wait_status(victim)
    assert job["status"] == "interrupted" and "resume the job" in job["error"]["message"]
    assert client.post(f"/api/v1/jobs/{victim}/resume").status == 202

    assert client.wait_status(reference, timeout=180)["status"] == "done"
    job = client.wait_status(victim, timeout=180)
    assert job["status"] == "done" and job["run"]["runs"] == 3
    log = client.get(f"/api/v1/jobs/{victim}/log").body.decode()
    assert "resuming from snapshot_iter_20.solverstate" in log
    assert log.count("resuming from snapshot_iter_") == 2
    expected = read_weights(jobs_dir / reference / "snapshot_iter_120.caffemodel")
    resumed = read_weights(victim_dir / "snapshot_iter_120.caffemodel")
    assert expected.keys() == resumed.keys()
    for layer, arrays in expected.items():
        for want, got in zip(arrays, resumed[layer], strict=True):
            np.testing.assert_array_equal(got, want, err_msg=layer)
    server.kill()


def _rank_pids(job_dir: Path) -> list[int]:
    path = job_dir / "ranks.json"
    return [rank["pid"] for rank in json.loads(path.read_text())["ranks"]] if path.exists() else []


def test_a_killed_rank_interrupts_a_two_rank_job_which_resumes_on_two_ranks(site):
    jobs_dir, roots, demo = site
    # A grace long enough for two busy ranks to snapshot: this test follows the clean stop, not the kill.
    server = Server(jobs_dir, roots, env={"DIGITSLITE_ABORT_GRACE_S": "300"}).start()
    client = server.client()
    model_id = created_id(client.post("/api/v1/models", model_request(
        _dataset(client, demo), ranks=2, max_iter=100000, snapshot_interval=10, display=2, batch_size=1)))
    job_dir = jobs_dir / model_id
    wait_for(lambda: (job_dir / "snapshot_iter_10.solverstate").exists() and len(_rank_pids(job_dir)) == 2,
             180, "both ranks to run past the first snapshot")
    ranks, worker = _rank_pids(job_dir), client.job(model_id)["run"]["pid"]

    os.kill(ranks[1], signal.SIGKILL)
    job = client.wait_status(model_id)
    assert job["status"] == "interrupted"
    assert f"rank 1 (pid {ranks[1]}) was killed by SIGKILL" in job["error"]["message"]
    for pid in [*ranks, worker]:
        wait_for(lambda pid=pid: not _alive(pid), 30, f"process {pid} to end")
    log = client.get(f"/api/v1/jobs/{model_id}/log").body.decode()
    assert log.count(f"rank 1 (pid {ranks[1]}) was killed by SIGKILL") == 1  # the worker says it once,
    assert "Traceback" not in log and not re.search(r"^[EW]\d{4} ", log, re.M)   # without torch's log of it

    assert client.post(f"/api/v1/jobs/{model_id}/resume").status == 202
    resumed_at = max(snap["iteration"] for snap in job["snapshots"])
    # The killed run may have logged past resumed_at + 4 itself: only lines after the resume count.
    wait_for(lambda: _trained_since_resume(client, model_id, f"snapshot_iter_{resumed_at}.solverstate")
             > resumed_at + 4, 180, "the resumed ranks to train")
    running = _rank_pids(job_dir)
    assert len(set(running) - set(ranks)) == 2  # two new rank processes
    page = " ".join(client.request("GET", f"/models/{model_id}").body.decode().split())
    assert "2 in all; last run running" in page
    assert all(f"rank {rank}: pid {pid}</li>" in page for rank, pid in enumerate(running))
    assert client.post(f"/api/v1/jobs/{model_id}/abort").status == 202
    assert client.wait_status(model_id)["status"] == "aborted"
    assert "last run stopped" in " ".join(client.request("GET", f"/models/{model_id}").body.decode().split())
    server.kill()


def _post_and_forget(client, payload) -> None:
    """A request that the server's death may cut off: that is the point, not an error."""
    with contextlib.suppress(OSError, http.client.HTTPException):
        client.post("/api/v1/datasets", payload, timeout=5)


def _every_record_readable(jobs_dir: Path) -> list[str]:
    problems = []
    for folder in jobs_dir.iterdir():
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        for name in ("job.json", "state.json"):
            try:
                json.loads((folder / name).read_text())
            except (OSError, ValueError) as exc:
                problems.append(f"{folder.name}/{name}: {exc}")
    return problems


def test_killing_the_server_at_random_moments_loses_and_corrupts_nothing(site):
    jobs_dir, roots, demo = site
    chance = random.Random(20240611)
    server = Server(jobs_dir, roots).start()
    for round_number in range(10):
        client = server.client()
        for _ in range(2):
            created_id(client.post("/api/v1/datasets", dataset_request(demo, check=False,
                                                                       name=f"round {round_number}")))
        if round_number % 3 == 1:
            newest = client.get("/api/v1/jobs", per_page=1).json()["jobs"][0]
            client.post(f"/api/v1/jobs/{newest['id']}/abort")
        # One more request in flight, then the kill at a random moment (not a synchronisation).
        payload = dataset_request(demo, check=False, name=f"round {round_number} cut")
        threading.Thread(target=_post_and_forget, args=(client, payload), daemon=True).start()
        threading.Event().wait(chance.uniform(0.0, 0.5))
        server.kill()
        assert not _every_record_readable(jobs_dir)
        server = Server(jobs_dir, roots).start()
    client = server.client()
    wait_for(lambda: all(job["status"] in TERMINAL for job in client.get("/api/v1/jobs", per_page=500).json()
                         ["jobs"]), 180, "every job to finish")
    folders = sorted(path.name for path in jobs_dir.iterdir()
                     if path.is_dir() and not path.name.startswith("."))
    assert len(folders) >= 20 and not _every_record_readable(jobs_dir)
    listed = client.get("/api/v1/jobs", per_page=500).json()
    assert sorted(job["id"] for job in listed["jobs"]) == folders
    for job in listed["jobs"]:
        state = json.loads((jobs_dir / job["id"] / "state.json").read_text())
        assert job["status"] == state["status"]
        assert job["status"] in ("done", "aborted"), (job["id"], job["status"], job["error"])
    server.kill()
    # The folders alone rebuild the same index.
    rebuilt = JobIndex(jobs_dir / "rebuilt.sqlite")
    assert rebuilt.reconcile(jobs_dir, reread_all=True) == []
    assert sorted(job["id"] for job in rebuilt.list(JobFilter(), per_page=500)[0]) == folders




def test_abort_escalates_to_sigkill_when_the_worker_does_not_stop_in_time(site):
    jobs_dir, roots, demo = site
    server = Server(jobs_dir, roots, env={"DIGITSLITE_ABORT_GRACE_S": "0.2"}).start()
    client = server.client()
    model_id = created_id(client.post("/api/v1/models", model_request(_dataset(client, demo))))
    pid = client.wait_status(model_id, "running")["run"]["pid"]
    # A worker that cannot act on the SIGTERM (as one stuck in the kernel): frozen once its handler is
    # in place (without one the SIGTERM alone would end it), so it is still there after the grace.
    wait_for(lambda: _handles_sigterm(pid), 60, "the worker's SIGTERM handler")
    _freeze(pid)
    assert client.post(f"/api/v1/jobs/{model_id}/abort").status == 202
    job = client.wait_status(model_id)
    assert job["status"] == "aborted" and job["abort_requested"] is False and not _alive(pid)
    assert "stopped on request" not in client.get(f"/api/v1/jobs/{model_id}/log").body.decode()
    assert "did not stop within" in server.log()
    server.kill()
