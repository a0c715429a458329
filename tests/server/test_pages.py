"""The pages' server side over HTTP, without a browser: error pages, the security headers, the
plotly bundle, and the JSON helpers behind the forms (net check, Crop fix, graph, path completion,
learning-rate preview, dataset check)."""
import json
import re
from pathlib import Path

import pytest

from digitslite.caffe import caffe_pb2
from digitslite.engine.lr_policy import learning_rate
from digitslite.networks import get_network
from digitslite.server.pages.assets import plotly_bundle
from tests.server.harness import created_id, dataset_request, form_check, make_demo, running_server

HTML = {"Accept": "text/html,application/xhtml+xml"}
TINY = get_network("fcn_tiny").network_file.read_text()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("pages")
    demo = make_demo(root / "data", count=4, val_count=2)
    with running_server(root / "jobs", [root / "data"]) as server:
        client = server.client()
        dataset_id = created_id(client.post("/api/v1/datasets", dataset_request(demo)))
        assert client.wait_status(dataset_id)["status"] == "done"
        yield server, client, demo, dataset_id


def test_browsers_get_error_pages_and_api_clients_json(world):
    _, client, _, _ = world
    page = client.request("GET", "/no/such/page", headers=HTML)
    assert page.status == 404 and page.headers["content-type"].startswith("text/html")
    assert b"Nothing here" in page.body and b"/no/such/page" in page.body and b'href="/"' in page.body
    missing = client.request("GET", "/models/20990101-000000-abcdef", headers=HTML)
    assert missing.status == 404 and b"There is no model with the id 20990101-000000-abcdef" in missing.body
    for path in ("/api/v1/no/such", "/pages-api/no/such"):
        response = client.request("GET", path, headers=HTML)
        assert response.status == 404 and response.json()["error"]["message"]
    assert client.request("GET", "/no/such/page", headers={"Accept": "application/json"}).json()["error"]


def test_an_unreadable_job_gives_the_500_page_and_json_to_the_api(world):
    server, client, demo, _ = world
    job_id = created_id(client.post("/api/v1/datasets", dataset_request(demo, name="broken")))
    client.wait_status(job_id)
    (server.jobs_dir / job_id / "state.json").write_text("{not json")
    page = client.request("GET", f"/datasets/{job_id}", headers=HTML)
    assert page.status == 500 and b"Something went wrong" in page.body and b"server's log" in page.body
    api = client.get(f"/api/v1/jobs/{job_id}")
    assert api.status == 500 and api.headers["content-type"] == "application/json"


def test_pages_keep_every_request_on_this_server(world):
    _, client, _, dataset_id = world
    for path in ("/", "/datasets/new", "/models/new", f"/datasets/{dataset_id}", "/store", "/account"):
        response = client.request("GET", path, headers=HTML)
        assert response.status == 200, path
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "connect-src 'self'" in policy and "http" not in policy
        assert not re.search(rb'(src|href)="(https?:)?//', response.body), path


def test_plotly_comes_from_the_installed_package(world):
    _, client, _, _ = world
    response = client.get("/assets/plotly.min.js")
    assert response.status == 200 and response.headers["content-type"].startswith("text/javascript")
    assert response.body == plotly_bundle().read_bytes()


def _check(client, text: str, dataset_id: str | None = None) -> dict:
    fields = {"text": text} | ({"dataset": dataset_id} if dataset_id else {})
    response = client.post_form("/pages-api/net-check", fields)
    assert response.status == 200, response.body
    return response.json()


def test_net_check_gives_shapes_strides_crops_and_located_errors(world):
    _, client, _, dataset_id = world
    good = _check(client, TINY, dataset_id)
    assert good["error"] is None and good["layers"] == 28
    blobs = {blob["name"]: blob["shape"] for blob in good["blobs"]}
    assert blobs["data"] == [4, 3, 48, 64] and blobs["score"] == [4, 10, 48, 64]  # the demo has 10 classes
    assert [(crop["layer"], crop["written"], crop["derived"]) for crop in good["crops"]] == [
        ("upscore2c", None, [1]), ("score", None, [2])]
    assert good["strides"]["crop_offset"] == [2] and good["strides"]["rows"][0]["layer"] == "conv1_1"
    typo = TINY.replace('bottom: "pool1"', 'bottom: "pool9"', 1)
    error = _check(client, typo)["error"]
    assert error["line"] == TINY[:TINY.index('bottom: "pool1"')].count("\n") + 1 and error["column"] == 3
    assert "pool9" in error["message"] and "did you mean 'pool1'" in error["message"]
    unclosed = _check(client, TINY.replace("layer {", "layer {{", 1))["error"]
    assert unclosed["line"] is not None and unclosed["message"]


def test_the_crop_fix_writes_the_derived_offsets_and_keeps_the_rest(world):
    _, client, _, _ = world
    wrong = TINY.replace("crop_param {\n    axis: 2\n  }", "crop_param {\n    axis: 2\n    offset: 7\n  }")
    assert not all(crop["ok"] for crop in _check(client, wrong)["crops"])
    fixed = client.post_form("/pages-api/net-fix", {"text": wrong}).json()["text"]
    assert fixed.splitlines()[:14] == TINY.splitlines()[:14]  # the comments stay
    assert "offset: 7" not in fixed and fixed.count("offset: 1") == 1 and fixed.count("offset: 2") == 1
    assert all(crop["ok"] and crop["written"] for crop in _check(client, fixed)["crops"])


def test_a_classifier_for_other_classes_than_the_dataset_is_flagged_with_both_fixes(world):
    _, client, _, dataset_id = world      # the demo dataset has 10 classes
    pasted = TINY.replace("{{num_classes}}", "21")   # as one pastes a VOC net
    flagged = _check(client, pasted, dataset_id)
    assert "gets scores for 21 classes but the dataset has 10" in flagged["error"]["message"]
    assert flagged["class_fixes"] == ["score_fr", "upscore2", "score_pool2", "upscore4"]
    assert flagged["dataset_classes"] == 10
    assert _check(client, pasted)["error"] is None, "without a dataset there is nothing to compare"
    fields = {"text": pasted, "dataset": dataset_id}
    counted = client.post_form("/pages-api/net-fix-classes", fields | {"to": "count"}).json()["text"]
    assert _check(client, counted, dataset_id)["error"] is None
    assert counted.count("num_output: 10") == 4 and "num_output: 21" not in counted
    assert counted.splitlines()[:14] == TINY.splitlines()[:14]   # the comments stay
    templated = client.post_form("/pages-api/net-fix-classes", fields | {"to": "template"}).json()["text"]
    assert templated == TINY


def test_a_crop_caffe_runs_without_a_whole_offset_is_a_warning_with_its_line(world):
    _, client, _, _ = world
    # an even kernel in conv1_1 (2, pad 1) shifts the map by half a pixel: offset (1 - 1/2) / 1
    text = TINY.replace("kernel_size: 3", "kernel_size: 2", 1)
    result = _check(client, text)
    assert result["error"] is None, result["error"]
    (warning,) = result["warnings"]
    assert "crops at offset 0 (the default), as Caffe does" in warning["message"]
    assert warning["line"] == TINY[:TINY.index('name: "score"\n  type: "Crop"')].count("\n")
    assert [crop["derived"] for crop in result["crops"]][-1] is None


def test_a_loss_ignoring_another_value_than_the_dataset_is_flagged(world):
    _, client, _, dataset_id = world      # the demo dataset marks void pixels with 255
    other = TINY.replace("ignore_label: {{ignore_label}}", "ignore_label: 11")  # as written by hand
    message = _check(client, other, dataset_id)["error"]["message"]
    assert "ignores label 11 but the dataset marks void pixels with 255: set ignore_label: 255" in message


def test_network_graphs_are_svg_of_the_training_net(world):
    _, client, _, _ = world
    standard = client.get("/pages-api/networks/fcn_tiny/graph.svg")
    assert standard.status == 200 and standard.headers["content-type"].startswith("image/svg+xml")
    svg = standard.body.decode()
    assert svg.startswith("<svg") and svg.count('<g class="layer') == 21  # in-place ReLUs join their layer
    assert ">upscore2c<" in svg and "Convolution 3×3/1 → 16 + ReLU" in svg and "<script" not in svg
    custom = client.post_form("/pages-api/net-graph", {"text": TINY.replace('name: "score"', 'name: "<b>"')})
    assert custom.status == 200 and "&lt;b&gt;" in custom.body.decode() and "<b>" not in custom.body.decode()
    assert client.get("/pages-api/networks/nonet/graph.svg").status == 404


def test_path_completion_stays_inside_the_data_roots(world):
    server, client, demo, _ = world
    root = server.data_roots[0]
    listed = client.get("/pages-api/paths", prefix=f"{demo}/").json()["paths"]
    assert f"{demo}/images/" in listed and f"{demo}/val_labels/" in listed
    assert f"{demo}/classes.txt" not in listed  # folders only, unless files are asked for
    files = client.get("/pages-api/paths", prefix=f"{demo}/cl", files="1").json()["paths"]
    assert files == [f"{demo}/classes.txt"]
    assert client.get("/pages-api/paths", prefix="demo/im").json()["paths"] == [f"{demo}/images/"]
    for outside in ("/etc/", f"{root}/../", "/"):
        assert client.get("/pages-api/paths", prefix=outside).json()["paths"] == []
    assert client.get("/pages-api/paths", prefix="").json()["paths"] == [f"{Path(root).resolve()}/"]


def test_the_learning_rate_preview_is_the_engine_schedule(world):
    _, client, _, _ = world
    curves = client.get("/pages-api/lr-curve", max_iter=1000, base_lr="0.01,0.1", lr_policy="multistep",
                        gamma=0.5, stepvalue="300,600").json()["curves"]
    assert [curve["base_lr"] for curve in curves] == [0.01, 0.1]
    solver = caffe_pb2.SolverParameter(base_lr=0.01, lr_policy="multistep", gamma=0.5, stepvalue=[300, 600],
                                       max_iter=1000)
    step, expected = 0, []
    for iteration in range(1001):  # as the solver steps: the counter advances one call at a time
        rate, step = learning_rate(solver, iteration, step)
        expected.append(rate)
    assert curves[0]["rates"] == [expected[iteration] for iteration in curves[0]["iterations"]]
    assert curves[0]["iterations"][0] == 0 and curves[0]["iterations"][-1] == 1000
    refused = client.get("/pages-api/lr-curve", max_iter=100, lr_policy="step")
    assert refused.status == 422 and "stepsize" in refused.json()["error"]["message"]
    assert refused.json()["error"]["field"] == "stepsize"
    sigmoid = client.get("/pages-api/lr-curve", max_iter=100, lr_policy="sigmoid", gamma=0.1, stepsize=0)
    assert sigmoid.status == 422 and sigmoid.json()["error"]["field"] == "stepsize"   # Caffe's CHECK_GT


def test_the_dataset_check_reports_and_previews_without_creating_a_job(world):
    _, client, demo, _ = world
    before = client.get("/api/v1/jobs").json()["total"]
    fields = {"images": str(demo / "images"), "labels": str(demo / "labels"), "val_percent": "25",
              "classes": str(demo / "classes.txt")}
    checked = form_check(client, fields).json()
    assert checked["report"]["ok"] and checked["report"]["counts"] == {"train": 3, "val": 1}
    assert [stat["name"] for stat in checked["report"]["classes"]][:3] == ["sky", "building", "road"]
    preview = checked["previews"][0]
    assert preview["image"].startswith("data:image/png;base64,")
    assert preview["label"].startswith("data:image/png;base64,")
    assert preview["problems"] == [] and preview["classes"]
    colours = (demo / "colormap.txt").read_text().splitlines()
    (demo / "short_colormap.txt").write_text("\n".join(colours[:-1]) + "\n")  # the last colour is unknown
    rgb = {"images": str(demo / "images"), "labels": str(demo / "labels_rgb"), "label_mode": "rgb",
           "colormap": str(demo / "short_colormap.txt"), "val_percent": "25"}
    bad = form_check(client, rgb).json()
    assert not bad["report"]["ok"] and bad["report"]["problems"][0]["kind"] == "unknown_colour"
    assert "label colours that are not in the colour map" in bad["previews"][0]["problems"]
    outside = form_check(client, fields | {"images": "/etc"})
    assert outside.status == 403 and "outside the data roots" in outside.json()["error"]["message"]
    assert client.get("/api/v1/jobs").json()["total"] == before
    gone = client.get("/pages-api/dataset-check/0123456789abcdef")
    assert gone.status == 404 and "press Check again" in gone.json()["error"]["message"]


def test_explore_records_are_images_with_class_colours(world):
    _, client, _, dataset_id = world
    base = f"/pages-api/datasets/{dataset_id}/records/train/0"
    image, label, classes = (client.get(f"{base}/{part}") for part in ("image", "label", "classes"))
    assert image.body.startswith(b"\x89PNG") and label.body.startswith(b"\x89PNG")
    assert classes.body.startswith(b"\x89PNG") and classes.body != label.body
    assert client.get(f"/pages-api/datasets/{dataset_id}/records/train/99/image").status == 404
    page = client.get(f"/datasets/{dataset_id}").body.decode()
    assert page.count('class="record"') == 4 and "records/train/3/label" in page
    info = json.loads(client.get(f"/api/v1/jobs/{dataset_id}/files/dataset/dataset.json").body)
    assert all(f"> {name}</td>" in page for name in info["classes"])


def test_the_server_still_never_loads_torch(world):
    server, client, _, _ = world
    client.get("/pages-api/lr-curve", max_iter=10)
    _check(client, TINY)
    maps = Path(f"/proc/{server.process.pid}/maps").read_text()
    assert "libtorch" not in maps
