"""The scheduler in-process with real worker subprocesses (dataset jobs: quick and torch-free)."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from digitslite.jobs.folder import JobFolder
from digitslite.jobs.index import JobIndex
from digitslite.jobs.job import TERMINAL, JobSpec, Status, new_job_id
from digitslite.jobs.lock import JobLock, is_held
from digitslite.jobs.scheduler import Scheduler, SchedulerSettings
from digitslite.jobs.supervisor import TOKEN_ENV
from tests.server.harness import kill_workers, make_demo, wait_for

OPTIONS = {"val_percent": None, "label_mode": "palette", "nearest": False, "ignore_label": 255,
           "encoding": "png", "resize": "none", "width": None, "height": None, "seed": None,
           "allow_empty_classes": False}


def dataset_spec(demo: Path, **fields) -> JobSpec:
    """A dataset job as POST /api/v1/datasets would define it."""
    paths = {"images": str(demo / "images"), "labels": str(demo / "labels"), "val_images": None,
             "val_labels": None, "colormap": None, "classes": None}
    params = {"request": {}, "source": "server", "paths": paths, "options": OPTIONS}
    return JobSpec(id=new_job_id(), kind="dataset", name=fields.pop("name", "d"), owner="tester",
                   created=time.time(), params=params, **fields)


@pytest.fixture
def setup(tmp_path):
    demo = make_demo(tmp_path / "data", count=4, val_count=0)
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    index = JobIndex(jobs_dir / "index.sqlite")

    def scheduler(**settings) -> Scheduler:
        return Scheduler(jobs_dir, index, SchedulerSettings(**{"poll_interval_s": 0.05, **settings}))

    yield demo, jobs_dir, index, scheduler
    kill_workers(jobs_dir)


def _history(folder: JobFolder) -> dict[str, float]:
    return {status: at for status, at in folder.state().history}


def _run_until_finished(scheduler: Scheduler, folders: list[JobFolder], timeout: float = 60) -> None:
    def finished() -> bool:
        scheduler.tick()
        return all(folder.state().status in TERMINAL for folder in folders)
    wait_for(finished, timeout, "the jobs to finish")


def test_a_job_waits_for_its_gpu_while_a_cpu_job_runs_beside(setup):
    demo, _, _, make = setup
    scheduler = make(gpus=["0"], cpu_slots=1)
    specs = [dataset_spec(demo, gpus=1), dataset_spec(demo, gpus=["0"]), dataset_spec(demo)]
    first, second, cpu = scheduler.submit([(spec, None) for spec in specs])
    scheduler.tick()
    assert first.state().status == Status.STARTING and first.state().gpus == ["0"]
    assert second.state().status == Status.QUEUED
    assert cpu.state().status == Status.STARTING and cpu.state().gpus == []
    _run_until_finished(scheduler, [first, second, cpu])
    assert all(folder.state().status == Status.DONE for folder in (first, second, cpu))
    assert _history(second)["starting"] >= _history(first)["done"]


def test_higher_priority_starts_first_then_first_come_first_served(setup):
    demo, _, _, make = setup
    scheduler = make(cpu_slots=1)
    specs = [dataset_spec(demo), dataset_spec(demo, priority=5), dataset_spec(demo)]
    early, urgent, late = scheduler.submit([(spec, None) for spec in specs])
    _run_until_finished(scheduler, [early, urgent, late])
    starts = [_history(folder)["starting"] for folder in (urgent, early, late)]
    assert starts == sorted(starts)


def test_a_job_waits_for_its_dependency_and_fails_clearly_when_it_fails(setup, tmp_path):
    demo, _, index, make = setup
    scheduler = make(cpu_slots=2)
    broken = dataset_spec(demo)
    broken.params["paths"]["images"] = str(tmp_path / "missing")
    good = dataset_spec(demo)
    (bad_folder, good_folder) = scheduler.submit([(broken, None), (good, None)])
    after_bad = dataset_spec(demo, depends_on=[broken.id], waits_for=[broken.id])
    after_good = dataset_spec(demo, depends_on=[good.id], waits_for=[good.id])
    waiting_bad, waiting_good = scheduler.submit([(after_bad, None), (after_good, None)])
    scheduler.tick()
    assert waiting_good.state().status == Status.QUEUED
    _run_until_finished(scheduler, [bad_folder, good_folder, waiting_bad, waiting_good])
    assert bad_folder.state().status == Status.FAILED and "missing" in bad_folder.state().error["message"]
    assert waiting_bad.state().status == Status.FAILED
    assert f"job {broken.id}, which this job needs, is failed" in waiting_bad.state().error["message"]
    assert waiting_good.state().status == Status.DONE
    assert _history(waiting_good)["starting"] >= _history(good_folder)["done"]
    assert index.get(waiting_bad.id)["status"] == "failed"


def test_abort_of_a_queued_job_and_delete_rules(setup):
    demo, _, index, make = setup
    scheduler = make(cpu_slots=1)
    base, = scheduler.submit([(dataset_spec(demo), None)])
    user, = scheduler.submit([(dataset_spec(demo, depends_on=[base.id], waits_for=[base.id]), None)])
    scheduler.abort(user.id)
    assert user.state().status == Status.ABORTED
    with pytest.raises(Exception, match="only queued or running"):
        scheduler.abort(user.id)
    with pytest.raises(Exception, match=f"used by {user.id}"):
        scheduler.delete(base.id)
    scheduler.delete(base.id, force=True)
    assert not base.path.exists() and index.get(base.id) is None
    scheduler.resume(user.id)
    _run_until_finished(scheduler, [user])
    assert "was deleted" in user.state().error["message"]


def test_a_worker_without_the_launch_token_refuses_to_run(setup):
    demo, _, _, make = setup
    scheduler = make(cpu_slots=1)
    folder, = scheduler.submit([(dataset_spec(demo), None)])
    before = folder.state_file.read_bytes()
    env = {**os.environ, TOKEN_ENV: "not-the-token"}
    out = subprocess.run([sys.executable, "-m", "digitslite.worker", str(folder.path)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "not launched for this worker" in out.stdout
    assert folder.state_file.read_bytes() == before


def test_the_worker_lock_is_held_exactly_while_a_worker_lives(tmp_path):
    path = tmp_path / "worker.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from digitslite.jobs.lock import JobLock\n"
        f"lock = JobLock(Path({str(path)!r})); lock.acquire(blocking=True); print('held', flush=True)\n"
        "sys.stdin.readline()")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert is_held(path) and not JobLock(path).acquire(blocking=False)
    holder.kill()
    holder.wait()
    assert not is_held(path)
