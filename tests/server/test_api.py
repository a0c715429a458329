"""The JSON API's shapes and refusals, over HTTP against one server with a dataset and a small model."""
import io
import json
import subprocess
import sys
import zipfile

import pytest
from PIL import Image

from digitslite.datasets.options import ENCODINGS, LABEL_MODES, RESIZE_MODES
from digitslite.engine.choices import AMP_MODES, SOLVER_TYPES
from digitslite.engine.lr_policy import POLICIES
from digitslite.networks import get_network
from digitslite.server.app import create_app
from digitslite.server.config import ServerConfig
from tests.server.harness import created_id, dataset_request, make_demo, model_request, running_server


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    demo = make_demo(root / "data")
    with running_server(root / "jobs", [root / "data"]) as server:
        client = server.client()
        dataset_id = created_id(client.post("/api/v1/datasets", dataset_request(demo)))
        client.wait_status(dataset_id)
        # A custom network: the standard fcn_tiny's text, class count left as the template field.
        text = get_network("fcn_tiny").network_file.read_text()
        request = model_request(dataset_id, max_iter=10, snapshot_interval=10, network_prototxt=text)
        del request["network"]
        model_id = created_id(client.post("/api/v1/models", request))
        assert client.wait_status(model_id, timeout=120)["status"] == "done"
        yield server, client, root, dataset_id, model_id


def _error(response, status: int, field=None) -> str:
    assert response.status == status, response.body
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["field"] == field, error
    return error["message"]


def test_job_list_pages_and_filters(world):
    _, client, _, dataset_id, model_id = world
    listing = client.get("/api/v1/jobs", per_page=1).json()
    assert listing["total"] >= 2 and listing["pages"] == listing["total"] and len(listing["jobs"]) == 1
    assert listing["jobs"][0]["links"]["self"] == f"/api/v1/jobs/{listing['jobs'][0]['id']}"
    models = client.get("/api/v1/jobs", kind="model", status="done").json()["jobs"]
    assert model_id in [job["id"] for job in models] and dataset_id not in [job["id"] for job in models]
    assert client.get("/api/v1/jobs", text="demo").json()["jobs"][0]["id"] == dataset_id
    assert "one of" in _error(client.get("/api/v1/jobs", kind="robot"), 422, "kind")
    assert "unknown field" in _error(client.get("/api/v1/jobs", sort="name"), 422, "sort")
    assert "at most 500" in _error(client.get("/api/v1/jobs", per_page=501), 422, "per_page")
    events = f"/api/v1/jobs/{model_id}/events"
    assert "'soon' is not a count" in _error(client.get(events, after="soon"), 422, "after")
    assert "at least 0" in _error(client.get(events, after="-2"), 422, "after")


def test_a_job_in_full(world):
    _, client, _, dataset_id, model_id = world
    job = client.job(model_id)
    assert job["kind"] == "model" and job["status"] == "done" and job["depends_on"] == [dataset_id]
    assert job["params"]["network"]["kind"] == "prototxt"
    assert job["snapshots"] == [{"iteration": 10, "weights": "snapshot_iter_10.caffemodel",
                                 "solverstate": "snapshot_iter_10.solverstate"}]
    assert [entry["status"] for entry in job["history"]] == ["queued", "starting", "running", "done"]
    assert client.job(dataset_id)["dependents"] == [model_id]
    assert client.get(f"/api/v1/jobs/{model_id}/metrics", after=10_000).json()["metrics"] == []
    log = client.get(f"/api/v1/jobs/{model_id}/log", offset=5)
    assert int(log.headers["x-next-offset"]) == 5 + len(log.body)
    assert _error(client.get(f"/api/v1/jobs/{model_id}/files/../../index.sqlite"), 404, "name")


def test_a_dataset_from_an_uploaded_zip(world):
    _, client, root, _, _ = world
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted((root / "data" / "demo").rglob("*")):
            if path.is_file() and path.parent.name in ("images", "labels"):
                zipped.write(path, f"upload/{path.parent.name}/{path.name}")
    created = client.post_form("/api/v1/datasets", {"name": "zipped", "images": "upload/images",
                                                    "labels": "upload/labels", "val_percent": "25"},
                               [("archive", "demo.zip", archive.getvalue())])
    job_id = created_id(created)
    job = client.wait_status(job_id)
    assert job["status"] == "done" and job["params"]["source"] == "upload"
    assert client.get(f"/api/v1/jobs/{job_id}/files/dataset/dataset.json").json()["counts"]["val"] == 4


def test_a_digits_style_network_trains_as_a_custom_network(world):
    """A network without data layers, whose data and label DIGITS supplies from the dataset."""
    _, client, _, dataset_id, _ = world
    text = get_network("fcn_tiny").network_file.read_text()
    first, body = text.index("layer {"), text.index('layer {\n  name: "scale"')
    request = model_request(dataset_id, max_iter=2, snapshot_interval=2, test_interval=2,
                            network_prototxt=text[:first] + text[body:])
    del request["network"]
    model_id = created_id(client.post("/api/v1/models", request))
    assert client.wait_status(model_id, timeout=120)["status"] == "done", client.job(model_id)
    assert [snapshot["iteration"] for snapshot in client.job(model_id)["snapshots"]] == [2]
    train_val = client.get(f"/api/v1/jobs/{model_id}/files/train_val.prototxt").body.decode()
    for name in ("train-data", "train-label", "val-data", "val-label"):   # added as DIGITS adds them
        assert f'name: "{name}"' in train_val


def test_errors_are_json_never_html(world):
    _, client, _, _, model_id = world
    assert "no job with id" in _error(client.get("/api/v1/jobs/nope"), 404)
    _error(client.get("/api/v1/nowhere"), 404)
    _error(client.request("PUT", "/api/v1/jobs"), 405)
    _error(client.request("POST", "/api/v1/models", body=b"{not json", content_type="application/json"), 400)
    assert "done" in _error(client.post(f"/api/v1/jobs/{model_id}/abort"), 409)
    resumed = client.post(f"/api/v1/jobs/{model_id}/resume")
    assert "only aborted, failed or interrupted" in _error(resumed, 409)


def test_a_dataset_with_bad_labels_fails_its_job_with_the_whole_report(world):
    _, client, root, good_dataset, _ = world
    images, labels = root / "data" / "bad" / "images", root / "data" / "bad" / "labels"
    images.mkdir(parents=True)
    labels.mkdir()
    Image.new("RGB", (8, 8)).save(images / "a.png")
    Image.new("RGB", (8, 8)).save(images / "b.png")
    Image.new("P", (6, 6)).save(labels / "a.png")
    job_id = created_id(client.post("/api/v1/datasets", {"images": str(images), "labels": str(labels)}))
    job = client.wait_status(job_id)
    assert job["status"] == "failed" and "dataset not created" in job["error"]["message"]
    report = job["check_report"]
    problems = {problem["kind"] for problem in report["problems"]}
    assert not report["ok"] and {"size_mismatch", "unpaired_image"} <= problems, report
    assert not (root / "jobs" / job_id / "dataset").exists()  # nothing half-created
    assert client.job(good_dataset)["check_report"] is None
    assert "is not an existing folder" in _error(client.post("/api/v1/datasets", {
        "images": "bad/nothing-here", "labels": str(labels)}), 422, "images")


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"network_prototxt": 'layer { name: "x" type: "Convolution" bottom: "data" top: "x" '
                          "convolution_param { num_output: 2 kernel_size: 3 } }\nlayer { nme: 1 }"},
     "network_prototxt", "network_prototxt:2:9: unknown field 'nme'"),
    ({"lr_policy": "step"}, "gamma", "required with lr_policy step"),
    ({"base_lr": "fast"}, "base_lr", "not a number"),
    ({"solver_typ": "Adam"}, "solver_typ", "unknown field"),
    ({"dataset": "20000101-000000-aaaaaa"}, "dataset", "no dataset job"),
    ({"gpus": 1}, "gpus", "this machine has 0"),
    ({"network": "fcn_huge"}, "network", "one of"),
    ({"max_iter": 10, "epochs": 2}, "epochs", "not both"),
    ({"ranks": 4097}, "ranks", "at most"),  # more CPU ranks than cores
    ({"nnodes": 2}, "master", "give node 0's address"),
    ({"nnodes": 2, "master": "node0"}, "master", "'node0' is not ADDR:PORT"),
    ({"nnodes": 2, "node_rank": 2, "master": "10.0.0.1:29500"}, "node_rank", "at most 1"),
    ({"master": "10.0.0.1:29500"}, "master", "one node needs no meeting point"),
    ({"pipeline_stages": 4097}, "pipeline_stages", "at most"),  # more stages than CPU slots could be
    ({"pipeline_stages": 2, "nnodes": 2, "master": "10.0.0.1:29500"}, "pipeline_stages",
     "leave nnodes and sync_batchnorm out"),
    ({"pipeline_stages": 2, "ranks": 2049}, "pipeline_stages", "pipeline_stages x ranks must be at most"),
    ({"micro_batches": 4}, "pipeline_stages", "go with pipeline_stages above 1"),
    ({"pipeline_stages": 2, "pipeline_cuts": "pool1,pool2"}, "pipeline_cuts", "2 cuts make 3 stages, not 2"),
    ({"pipeline_stages": 2, "pipeline_schedule": "zigzag"}, "pipeline_schedule", "one of"),
    ({"pipeline_stages": 2, "pipeline_balance": "weights"}, "pipeline_balance", "one of"),
    ({"recompute": "0"}, "recompute", "give auto, a number of layers"),
])
def test_model_requests_are_checked_before_queueing(world, change, field, words):
    _, client, _, dataset_id, _ = world
    request = model_request(dataset_id) | change
    if "network_prototxt" in change:
        del request["network"]
    assert words in _error(client.post("/api/v1/models", request), 422, field)


def test_two_network_sources_are_refused(world):
    _, client, _, dataset_id, model_id = world
    request = model_request(dataset_id, network_job=model_id)
    assert "exactly one network source" in _error(client.post("/api/v1/models", request), 422, "network")


def test_sweep_clone_and_delete(world):
    _, client, _, dataset_id, model_id = world
    created = client.post("/api/v1/models", model_request(dataset_id, name="sweep", base_lr=[0.01, 0.001],
                                                          batch_size="1,2", priority=-5))
    assert created.status == 201
    jobs = created.json()["jobs"]
    for job in jobs:  # they only need to exist; stop them before they take the CPU
        assert client.delete(f"/api/v1/jobs/{job['id']}", force="true").status == 204
    assert sorted(job["name"] for job in jobs) == [
        "sweep [base_lr=0.001, batch_size=1]", "sweep [base_lr=0.001, batch_size=2]",
        "sweep [base_lr=0.01, batch_size=1]", "sweep [base_lr=0.01, batch_size=2]"]
    assert {job["group"] for job in jobs} == {"sweep"}

    clone = client.post(f"/api/v1/jobs/{model_id}/clone", {"max_iter": 5, "network_job": model_id,
                                                            "network_prototxt": None, "name": "again"})
    assert clone.status == 201
    clone_id = clone.json()["jobs"][0]["id"]
    detail = client.job(clone_id)
    assert detail["name"] == "again" and detail["params"]["solver"]["max_iter"] == 5
    assert detail["params"]["network"] == {"kind": "snapshot", "job": model_id, "iteration": None}
    assert sorted(detail["depends_on"]) == sorted([dataset_id, model_id])
    message = _error(client.delete(f"/api/v1/jobs/{model_id}"), 409)
    assert clone_id in message
    assert client.post(f"/api/v1/jobs/{clone_id}/abort").status == 202
    assert client.wait_status(clone_id)["status"] == "aborted"
    assert client.delete(f"/api/v1/jobs/{clone_id}").status == 204
    _error(client.get(f"/api/v1/jobs/{clone_id}"), 404)


def test_system_reports_the_queue_and_versions(world):
    _, client, _, _, _ = world
    system = client.get("/api/v1/system").json()
    assert system["gpus"] == [] and system["users"] == "single-user" and system["you"] == "local"
    assert system["queue"]["done"] >= 2 and system["versions"]["digitslite"] == system["version"]


def _enum(schema: dict) -> list:
    """The choices of a (possibly nullable) property."""
    return next(option["enum"] for option in [schema, *schema.get("anyOf", [])] if "enum" in option)


def test_openapi_describes_exactly_the_routes_of_the_api(tmp_path, world):
    _, client, _, _, model_id = world
    document = client.get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.1") and "JobDetail" in document["components"]["schemas"]
    app = create_app(ServerConfig(jobs_dir=tmp_path, scheduler=False, gpus=[]))
    routes = {(rule.rule.removeprefix("/api/v1").replace("<path:", "{").replace("<", "{").replace(">", "}"),
               method.lower())
              for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert {(path, method) for path, methods in document["paths"].items() for method in methods} == routes
    detail = document["components"]["schemas"]["JobDetail"]["properties"]
    assert set(client.job(model_id)) <= set(detail)


def test_openapi_request_bodies_are_the_fields_the_server_reads(world):
    _, client, _, dataset_id, model_id = world
    document = client.get("/api/v1/openapi.json").json()
    schemas = document["components"]["schemas"]

    def body(path: str) -> dict:
        operation = document["paths"][path]["post"]
        reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        return schemas[reference.rsplit("/", 1)[1]]

    without_body = {path for path, methods in document["paths"].items()
                    if "post" in methods and "requestBody" not in methods["post"]}
    assert without_body == {"/jobs/{job_id}/abort", "/jobs/{job_id}/resume"}
    # Each body's documented fields are exactly those the server takes: its refusal of an unknown
    # field lists the known ones.
    posted = {"/datasets": "/api/v1/datasets", "/models": "/api/v1/models",
              "/models/{job_id}/infer": f"/api/v1/models/{model_id}/infer",
              "/pretrained": "/api/v1/pretrained",
              "/store/import": "/api/v1/store/import",
              "/pretrained/{job_id}/convolutionalize": f"/api/v1/pretrained/{model_id}/convolutionalize",
              "/models/{job_id}/publish": f"/api/v1/models/{model_id}/publish"}
    for path, url in posted.items():
        message = _error(client.post(url, {"colour": "red"}), 422, "colour")
        assert message.split("the known fields are ")[1].split(", ") == sorted(body(path)["properties"]), path
    # The choices are the engine's and the datasets' own, and the bounds those the server enforces.
    model = body("/models")["properties"]
    assert _enum(model["solver_type"]) == list(SOLVER_TYPES) and _enum(model["lr_policy"]) == list(POLICIES)
    assert _enum(model["amp"]) == ["none", *AMP_MODES] and "dataset" in body("/models")["required"]
    dataset = body("/datasets")["properties"]
    assert (_enum(dataset["label_mode"]), _enum(dataset["encoding"]), _enum(dataset["resize"])) == (
        list(LABEL_MODES), list(ENCODINGS), list(RESIZE_MODES))
    priority = next(option for option in model["priority"]["anyOf"] if option.get("type") == "integer")
    assert (priority["minimum"], priority["maximum"]) == (-100, 100)
    refused = client.post("/api/v1/models", model_request(dataset_id, priority=priority["maximum"] + 1))
    assert "at most 100" in _error(refused, 422, "priority")
    form = document["paths"]["/datasets"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["allOf"][1]["properties"]["archive"]["items"]["format"] == "binary"


def test_jobs_command_against_the_server(world):
    server, _, _, dataset_id, model_id = world

    def jobs(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "digitslite", "jobs", "--server", server.url, *args],
                              capture_output=True, text=True, timeout=60)

    listing = json.loads(jobs("list", "--kind", "model", "--json").stdout)
    assert model_id in [job["id"] for job in listing["jobs"]]
    shown = jobs("show", dataset_id)
    assert shown.returncode == 0 and dataset_id in shown.stdout and model_id in shown.stdout
    refused = jobs("resume", model_id)
    assert refused.returncode == 1 and "409" in refused.stderr and "only aborted" in refused.stderr
    assert "no job with id" in jobs("abort", "nope").stderr
