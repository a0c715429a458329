"""A pipelined model job through the server: two stage processes on two CPU slots, the model page
shows the stages and the bubble, abort snapshots, and the snapshot resumes on one process."""
import json

from click.testing import CliRunner

from digitslite.cli import main
from tests.server.harness import (
    Server,
    created_id,
    dataset_request,
    model_request,
    wait_for,
)


def test_a_pipelined_job_runs_aborts_with_a_snapshot_and_resumes_on_one_process(site):
    jobs_dir, roots, demo = site
    server = Server(jobs_dir, roots).start()
    try:
        client = server.client()
        dataset_id = created_id(client.post("/api/v1/datasets", dataset_request(demo)))
        assert client.wait_status(dataset_id)["status"] == "done"
        model_id = created_id(client.post("/api/v1/models", model_request(
            dataset_id, pipeline_stages=2, micro_batches=2, pipeline_cuts="pool2", max_iter=100000,
            snapshot_interval=4, display=1, batch_size=1, test_interval=1000)))
        job_dir = jobs_dir / model_id
        wait_for(lambda: (job_dir / "snapshot_iter_4.solverstate").exists(), 180, "the first snapshot")
        ranks = json.loads((job_dir / "ranks.json").read_text())
        assert [rank["rank"] for rank in ranks["ranks"]] == [0, 1]
        assert client.post(f"/api/v1/jobs/{model_id}/abort").status == 202
        job = client.wait_status(model_id)
        assert job["status"] == "aborted" and job["snapshots"]
        page = " ".join(client.request("GET", f"/models/{model_id}").body.decode().split())
        # the default schedule: 1F1B, as M >= K
        assert "2 stages, 2 micro-batches per update (1f1b); measured bubble" in page
        assert "model for equal stages: 33 %" in page                  # (2 − 1) / (2 + 2 − 1)
        stages = json.loads((job_dir / "pipeline.json").read_text())["stages"]
        assert stages[0]["layers"][-1] == "pool2" and stages[1]["receives"][-1] == "pool2"
        for stage in stages:    # the weights each stage process holds, and its memory peak
            assert f"<td>{stage['parameters']:,} ({stage['parameter_bytes'] / 2**20:.1f})</td>" in page
            assert stage["peak_bytes"] > stage["parameter_bytes"] > 0
    finally:
        server.kill()

    stopped_at = max(snapshot["iteration"] for snapshot in job["snapshots"])
    state = job_dir / f"snapshot_iter_{stopped_at}.solverstate"
    resumed = CliRunner().invoke(main, ["train", "--resume", str(state), "--iter-size", "2", "--cpu",
                                        "--max-iter", str(stopped_at + 2), "-o", str(job_dir), "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["iterations"] == stopped_at + 2
    lines = [json.loads(line) for line in (job_dir / "metrics.jsonl").read_text().splitlines()]
    trained = [line["iteration"] for line in lines if line["phase"] == "train"]
    assert trained[-3:] == [stopped_at, stopped_at + 1, stopped_at + 2]
