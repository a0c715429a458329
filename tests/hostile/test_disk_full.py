"""Item 7: a full disk is named as such, with its path; reads keep working and the scheduler backs off
and says it once instead of logging a traceback four times a second."""
import errno
import itertools
import json
import logging
import sqlite3
import threading
import time

from digitslite import diskfull
from digitslite.jobs.index import JobIndex
from digitslite.jobs.scheduler import Scheduler, SchedulerSettings
from tests.hostile.conftest import dataset_body, job_folders

FULL = sqlite3.OperationalError("database or disk is full")


def test_a_job_reads_while_the_index_cannot_be_written(app, client, demo, tmp_path, monkeypatch):
    job_id = client.post("/api/v1/datasets", json=dataset_body(demo)).get_json()["jobs"][0]["id"]
    state_file = tmp_path / "jobs" / job_id / "state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "status": "running"}))  # ahead of the index
    index = app.extensions["digitslite"].index
    monkeypatch.setattr(index, "refresh", lambda folder: (_ for _ in ()).throw(FULL))
    response = client.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200 and response.get_json()["status"] == "running"


def test_creating_a_job_on_a_full_disk_says_disk_full_and_leaves_nothing(client, demo, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr("digitslite.jobs.scheduler.create_job_folder", full)
    response = client.post("/api/v1/datasets", json=dataset_body(demo))
    assert response.status_code == 507
    assert response.get_json()["error"]["message"].startswith(f"disk full at {tmp_path / 'jobs'}")
    assert job_folders(tmp_path / "jobs") == []


def test_an_lmdb_io_error_on_a_nearly_full_disk_is_a_full_disk(tmp_path, monkeypatch):
    failure = OSError("mdb_txn_commit: Input/output error")
    monkeypatch.setattr(diskfull, "free_bytes", lambda path: 4096)
    assert diskfull.is_disk_full(failure, tmp_path)
    monkeypatch.setattr(diskfull, "free_bytes", lambda path: 10 << 30)
    assert not diskfull.is_disk_full(failure, tmp_path)


def test_the_scheduler_backs_off_and_says_a_full_disk_once(tmp_path, caplog):
    index = JobIndex(tmp_path / "index.sqlite")
    scheduler = Scheduler(tmp_path, index, SchedulerSettings(poll_interval_s=0.001))
    ticks = []

    def tick():
        ticks.append(time.monotonic())
        raise FULL
    scheduler.tick = tick
    caplog.set_level(logging.INFO, logger="digitslite.jobs.scheduler")
    thread = threading.Thread(target=scheduler._loop)
    thread.start()
    deadline = time.monotonic() + 30
    while len(ticks) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    scheduler.stop()
    scheduler._stopping.set()
    thread.join()
    index.close()
    assert len(ticks) >= 6
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert gaps[4] >= 0.016  # 0.001 s doubled per failure: the fifth pause is 32 ms at least
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1 and messages[0].startswith(f"scheduling paused: disk full at {tmp_path} (")
    assert not any(record.exc_info for record in caplog.records)
