"""The acceptance story over HTTP against a real server process: dataset from demo data, a few
hundred iterations of training streamed as Server-Sent Events, inference, download, and the
downloaded model run again by `digitslite infer` and re-imported as a pretrained job."""
import http.client
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.server.harness import created_id, dataset_request, make_demo, model_request, running_server


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One server with a finished demo dataset, shared by this module's tests."""
    root = tmp_path_factory.mktemp("e2e")
    data = root / "data"
    demo = make_demo(data)
    with running_server(root / "jobs", [data]) as server:
        client = server.client()
        dataset_id = created_id(client.post("/api/v1/datasets", dataset_request(demo)))
        assert client.wait_status(dataset_id)["status"] == "done"
        yield server, client, demo, dataset_id


def read_events(url: str, path: str, timeout: float = 120.0,
                headers: dict[str, str] | None = None) -> list[tuple[str, dict, str | None]]:
    """Follow a Server-Sent Events stream until its `end` event: (name, data, id) per event."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    connection.request("GET", path, headers={"Accept": "text/event-stream", **(headers or {})})
    reply = connection.getresponse()
    assert reply.status == 200 and reply.getheader("Content-Type").startswith("text/event-stream")
    events, name, event_id = [], None, None
    try:
        while True:
            line = reply.readline().decode()
            assert line, "the stream closed before its end event"
            if line.startswith("id: "):
                event_id = line.removeprefix("id: ").strip()
            elif line.startswith("event: "):
                name = line.removeprefix("event: ").strip()
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: ")), event_id))
                if name == "end":
                    return events
            elif line == "\n":
                name, event_id = None, None
    finally:
        connection.close()


def metric_records(events: list[tuple[str, dict, str | None]]) -> list[dict]:
    return [record for name, data, _ in events if name == "metrics" for record in data["records"]]


def test_train_stream_infer_download_and_reload(world, tmp_path):
    server, client, demo, dataset_id = world
    model_id = created_id(client.post("/api/v1/models", model_request(
        dataset_id, max_iter=200, snapshot_interval=50, test_interval=100)))
    events = read_events(server.url, f"/api/v1/jobs/{model_id}/events")

    statuses = [data["status"] for name, data, _ in events if name == "status"]
    assert "running" in statuses and statuses[-1] == "done"
    records = metric_records(events)
    train_iterations = [record["iteration"] for record in records if record["phase"] == "train"]
    assert train_iterations == sorted(train_iterations) and train_iterations[-1] == 200
    assert any(record["phase"] == "val" and "mean_iu" in record for record in records)
    assert [data["iteration"] for name, data, _ in events if name == "snapshot"] == [50, 100, 150, 200]
    assert events[-1][:2] == ("end", {"status": "done"})

    job = client.job(model_id)
    # Each status event counts the changes so far (queued, starting, running, done: 4 at the end),
    # never fewer than an earlier one: a page orders the stream and its replies by that count.
    transitions = [data["transitions"] for name, data, _ in events if name == "status"]
    assert transitions == sorted(transitions)
    assert transitions[-1] == len(job["history"]) == job["transitions"] == 4

    # A reconnect names the file and the count of its last metrics event: only later records come.
    # The id of another file (one that a resume has since replaced) starts over: `reset`, then all.
    file_id, count = [event_id for name, _, event_id in events if name == "metrics"][-1].split(":")
    assert int(count) == len(records)
    stream = f"/api/v1/jobs/{model_id}/events"
    again = read_events(server.url, stream, headers={"Last-Event-ID": f"{file_id}:{len(records) - 3}"})
    assert metric_records(again) == records[-3:] and "reset" not in [name for name, _, _ in again]
    other_file = f"{int(file_id) + 1}:{len(records)}"
    replaced = read_events(server.url, stream, headers={"Last-Event-ID": other_file})
    names = [name for name, _, _ in replaced]
    assert names.index("reset") < names.index("metrics") and metric_records(replaced) == records
    assert job["progress"] == 1.0 and [snap["iteration"] for snap in job["snapshots"]] == [50, 100, 150, 200]
    metrics = client.get(f"/api/v1/jobs/{model_id}/metrics", after=len(records) - 2).json()
    assert metrics["metrics"] == records[-2:] and metrics["next"] == len(records)
    log = client.get(f"/api/v1/jobs/{model_id}/log")
    assert log.status == 200 and b"worker: done" in log.body

    image = sorted((demo / "val_images").iterdir())[0]
    infer_id = created_id(client.post_form(f"/api/v1/models/{model_id}/infer", {"snapshot": "150"},
                                           [("images", image.name, image.read_bytes())]))
    assert client.wait_status(infer_id)["status"] == "done"
    results = client.get(f"/api/v1/jobs/{infer_id}/files/results.json").json()
    assert len(results["images"]) == 1 and results["classes"]
    prediction = client.get(f"/api/v1/jobs/{infer_id}/files/{results['images'][0]['prediction']}")
    assert prediction.status == 200 and prediction.body.startswith(b"\x89PNG")

    download = client.get(f"/api/v1/models/{model_id}/download", snapshot=200)
    assert download.status == 200 and download.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(download.body)) as tar:
        names = set(tar.getnames())
        tar.extractall(tmp_path / "model", filter="data")
    assert {"deploy.prototxt", "train_val.prototxt", "solver.prototxt", "snapshot_iter_200.caffemodel",
            "dataset.json", "info.json"} <= names
    info = json.loads((tmp_path / "model" / "info.json").read_text())
    assert info["snapshot file"] == "snapshot_iter_200.caffemodel" and info["job id"] == model_id
    assert json.loads((tmp_path / "model" / "dataset.json").read_text())["palette"]

    model = tmp_path / "model"
    out = subprocess.run([sys.executable, "-m", "digitslite", "infer",
                          "--net", str(model / "deploy.prototxt"),
                          "--weights", str(model / "snapshot_iter_200.caffemodel"),
                          "--dataset-json", str(model / "dataset.json"), "--json",
                          "--save-dir", str(tmp_path / "saved"), str(image)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["image"] == str(image)
    assert list((tmp_path / "saved").glob("*.png"))

    imported = created_id(client.post_form("/api/v1/pretrained", {"name": "reloaded"},
                                           [("archive", "model.tar.gz", download.body)]))
    assert client.wait_status(imported)["status"] == "done"
    again = created_id(client.post(f"/api/v1/models/{imported}/infer", {"dataset": dataset_id, "limit": 3}))
    finished = client.wait_status(again)
    assert finished["status"] == "done", finished["error"]
    scores = client.get(f"/api/v1/jobs/{again}/files/results.json").json()["scores"]
    assert 0 <= scores["mean_iu"] <= 1 and len(scores["per_class_iu"]) == len(results["classes"])


def test_the_server_process_never_loads_torch(world):
    server, client, _, _ = world
    assert client.get("/api/v1/system").status == 200
    maps = Path(f"/proc/{server.process.pid}/maps").read_text()
    assert "libtorch" not in maps
