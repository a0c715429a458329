"""Item 5: aborting a dataset job stops it at once as `aborted`: the SIGTERM goes to the worker alone,
which shuts its encoder pool down itself, instead of killing the pool under it."""
import os

from digitslite.datasets.demo import write_demo
from tests.server.harness import created_id, running_server, wait_for

COPIES = 150


def _big_dataset(root):
    """Many pairs from a few scenes (hard links): long enough to abort in the middle."""
    demo = root / "demo"
    write_demo(demo, count=8, val_count=0, width=160, height=120, seed=0)
    for folder in ("images", "labels"):
        for source in sorted((demo / folder).iterdir()):
            for copy in range(COPIES):
                os.link(source, source.with_name(f"{copy:04d}-{source.name}"))
    return demo


def test_an_aborted_dataset_job_ends_aborted_without_waiting_for_the_grace(tmp_path):
    data = tmp_path / "data"
    demo = _big_dataset(data)
    with running_server(tmp_path / "jobs", [data], env={"DIGITSLITE_ABORT_GRACE_S": "60"}) as server:
        client = server.client()
        job_id = created_id(client.post("/api/v1/datasets", {
            "images": str(demo / "images"), "labels": str(demo / "labels"), "check": False}))
        wait_for(lambda: client.job(job_id)["progress"] > 0, 120, "encoding to begin")
        assert client.post(f"/api/v1/jobs/{job_id}/abort").status == 202
        job = client.wait_status(job_id, timeout=50)  # well inside the 60 s grace
        assert job["status"] == "aborted", job["error"]
        assert "did not stop within" not in server.log()
        assert "stopped on request" in client.get(f"/api/v1/jobs/{job_id}/log").body.decode()
        assert not list((tmp_path / "jobs" / job_id).glob(".dataset.partial-*"))
