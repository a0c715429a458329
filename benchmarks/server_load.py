"""Server latency with 10,000 jobs in the index, and 50 clients polling while a training runs.

Run: .venv/bin/python benchmarks/server_load.py [--jobs 10000] [--clients 50] [--seconds 10]

It builds a jobs directory of synthetic finished jobs (job.json + state.json, as the server writes
them), starts `digitslite serve` on a free loopback port (the start-up indexes every folder), and
times over HTTP:
  1. GET /api/v1/jobs: the first page, a filtered page, a text search and a deep page; and GET /;
  2. a real fcn_tiny training on demo data while N client threads poll GET /api/v1/jobs/{id},
     with the training's own speed (images/s from metrics.jsonl) polled and unpolled.
Goal: p95 below 100 ms for one page of jobs. Not part of the test run.
"""
import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digitslite.jobs.job import JobSpec, JobState, Status  # noqa: E402
from tests.server.harness import (  # noqa: E402
    Client,
    Server,
    created_id,
    dataset_request,
    kill_workers,
    make_demo,
    model_request,
    wait_for,
)

KINDS = ("dataset", "model", "inference", "pretrained")
FINAL = (Status.DONE, Status.DONE, Status.DONE, Status.FAILED, Status.ABORTED)


def fill_jobs(jobs_dir: Path, count: int) -> None:
    """`count` finished jobs, written directly (no fsync: this is a fixture, not a server)."""
    jobs_dir.mkdir(parents=True)
    start = time.time() - count * 60
    for number in range(count):
        job_id = f"20200101-{number:06d}-{number % 4096:03x}"
        spec = JobSpec(id=job_id, kind=KINDS[number % 4], name=f"job {number} of the load test",
                       owner=("ann", "bob", "cy")[number % 3], created=start + number * 60,
                       params={"n": number}, group=f"group {number % 50}")
        state = JobState().moved_to(Status.QUEUED).moved_to(FINAL[number % len(FINAL)])
        folder = jobs_dir / job_id
        folder.mkdir()
        (folder / "job.json").write_text(json.dumps(spec.to_dict()))
        (folder / "state.json").write_text(json.dumps(state.to_dict()))


def timed(client: Client, path: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.request("GET", path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status == 200, (path, response.status, response.body[:200])
    return times


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered), 2),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 2), "max_ms": round(ordered[-1], 2)}


def training_rate(jobs_dir: Path, job_id: str, after: int) -> float | None:
    """Mean images/s over the metric records after iteration `after`."""
    path = jobs_dir / job_id / "metrics.jsonl"
    rates = [record["images_per_s"] for record in map(json.loads, path.read_text().splitlines())
             if record.get("images_per_s") and record["iteration"] > after]
    return round(statistics.mean(rates), 1) if rates else None


def last_iteration(jobs_dir: Path, job_id: str) -> int:
    lines = (jobs_dir / job_id / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["iteration"] if lines else 0


def poll_while_training(server: Server, jobs_dir: Path, demo: Path, clients: int, seconds: float,
                        intervals: tuple[float, ...]) -> dict:
    """Clients polling one training job's status, each every `interval` seconds (0: back to back)."""
    client = server.client()
    dataset_id = created_id(client.post("/api/v1/datasets", dataset_request(demo)))
    client.wait_status(dataset_id)
    model_id = created_id(client.post("/api/v1/models", model_request(
        dataset_id, max_iter=10**6, display=10, snapshot_interval=10**6, test_interval=10**6)))
    metrics = jobs_dir / model_id / "metrics.jsonl"
    wait_for(lambda: metrics.exists() and last_iteration(jobs_dir, model_id) >= 50, 300, "a warm training")
    quiet_from = last_iteration(jobs_dir, model_id)
    time.sleep(seconds)  # the training alone, for its reference speed
    report = {"training alone": {"images_per_s": training_rate(jobs_dir, model_id, quiet_from)}}
    for interval in intervals:
        busy_from = last_iteration(jobs_dir, model_id)
        latencies = _poll(server, model_id, clients, seconds, interval)
        pace = f"polling every {interval:g} s" if interval else "back to back"
        name = f"{clients} clients {pace}"
        report[name] = {"requests_per_s": round(len(latencies) / seconds, 1), **summary(latencies),
                        "training_images_per_s": training_rate(jobs_dir, model_id, busy_from)}
    client.post(f"/api/v1/jobs/{model_id}/abort")
    client.wait_status(model_id)
    return report


def _poll(server: Server, job_id: str, clients: int, seconds: float, interval: float) -> list[float]:
    latencies: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        mine = server.client()
        while not stop.is_set():
            started = time.perf_counter()
            response = mine.request("GET", f"/api/v1/jobs/{job_id}")
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status == 200 and response.json()["status"] == "running"
            stop.wait(interval)

    threads = [threading.Thread(target=poll) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        jobs_dir = root / "jobs"
        started = time.perf_counter()
        fill_jobs(jobs_dir, args.jobs)
        print(f"wrote {args.jobs} job folders in {time.perf_counter() - started:.1f} s", flush=True)
        demo = make_demo(root / "data", count=16, val_count=4)
        started = time.perf_counter()
        server = Server(jobs_dir, [root / "data"]).start()
        elapsed = time.perf_counter() - started
        print(f"server up (indexing {args.jobs} folders) in {elapsed:.1f} s", flush=True)
        try:
            client = server.client()
            paths = {"GET /api/v1/jobs (page 1 of 50)": "/api/v1/jobs",
                     "GET /api/v1/jobs?kind=model&status=done": "/api/v1/jobs?kind=model&status=done",
                     "GET /api/v1/jobs?text=group%2042": "/api/v1/jobs?text=group%2042",
                     "GET /api/v1/jobs?page=150": "/api/v1/jobs?page=150",
                     "GET /api/v1/jobs?per_page=500": "/api/v1/jobs?per_page=500",
                     "GET / (home page)": "/"}
            report = {name: summary(timed(client, path, args.requests)) for name, path in paths.items()}
            report |= poll_while_training(server, jobs_dir, demo, args.clients, args.seconds, (1.0, 0.0))
        finally:
            server.kill()
            kill_workers(jobs_dir)
    width = max(map(len, report))
    for name, numbers in report.items():
        print(f"{name:<{width}}  " + "  ".join(f"{key}={value}" for key, value in numbers.items()))
    page = report["GET /api/v1/jobs (page 1 of 50)"]["p95_ms"]
    print(f"goal p95 < 100 ms for one page of jobs: {'met' if page < 100 else 'NOT met'} ({page} ms)")


if __name__ == "__main__":
    main()
