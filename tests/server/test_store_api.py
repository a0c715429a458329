"""The model store through the API, against real processes: a model trained on one server, published
into a store folder, served by `digitslite store serve`, listed and imported by a second server whose
predictions then equal the first's; tampered weights, unreachable stores and hosts; the embedded
store served by the web server; a classifier convolutionalized into FCN-AlexNet initial weights."""
import hashlib
import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from digitslite.caffe.caffemodel import write_caffemodel
from digitslite.caffe.paramshapes import param_shapes
from digitslite.caffe.prototxt import parse_net, read_net
from digitslite.engine.net import CaffeNet
from digitslite.store.entries import add_to_master, write_info
from digitslite.store.locations import embedded_store_dir
from tests.server.harness import Client, created_id, dataset_request, make_demo, model_request, running_server
from tests.store.helpers import CLASSES, closed_port_url, served_store, write_tiny_entry

ENTRY = "tiny-demo"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _infer(client: Client, model_id: str, image: Path) -> str:
    return created_id(client.post_form(f"/api/v1/models/{model_id}/infer", {},
                                       [("images", image.name, image.read_bytes())]))


def _class_map(client: Client, infer_id: str) -> tuple[list[str], np.ndarray]:
    """The class names and the predicted class map of an inference job's first image."""
    finished = client.wait_status(infer_id)
    assert finished["status"] == "done", finished["error"]
    results = client.get(f"/api/v1/jobs/{infer_id}/files/results.json").json()
    png = client.get(f"/api/v1/jobs/{infer_id}/files/{results['images'][0]['prediction']}").body
    return results["classes"], np.asarray(Image.open(io.BytesIO(png)))


def _failure(client: Client, job_id: str) -> str:
    job = client.wait_status(job_id, timeout=30)
    assert job["status"] == "failed", job
    return job["error"]["message"]


def test_a_published_model_is_listed_imported_and_predicts_like_the_original(tmp_path):
    data, mirror_data = tmp_path / "data", tmp_path / "mirror-data"
    mirror_data.mkdir()
    demo = make_demo(data, count=8, val_count=4)
    image = sorted((demo / "val_images").iterdir())[0]
    with running_server(tmp_path / "jobs", [data]) as origin:
        client = origin.client()
        dataset_id = created_id(client.post("/api/v1/datasets", dataset_request(demo)))
        model_id = created_id(client.post("/api/v1/models", model_request(
            dataset_id, max_iter=20, snapshot_interval=10, test_interval=10)))
        assert client.wait_status(model_id)["status"] == "done"
        original_infer = _infer(client, model_id, image)

        outside = client.post(f"/api/v1/models/{model_id}/publish", {"store_dir": str(tmp_path / "elsewhere"),
                                                                    "name": ENTRY})
        assert outside.status == 403 and outside.json()["error"]["field"] == "store_dir"
        published = client.post(f"/api/v1/models/{model_id}/publish", {
            "store_dir": "store", "name": ENTRY, "license": "CC0", "note": "trained on the demo scenes"})
        assert published.status == 201, published.body
        entry = Path(published.json()["store_dir"]) / ENTRY
        assert entry.parent == (data / "store").resolve()
        weights = entry / published.json()["info"]["snapshot file"]
        assert weights.name == "snapshot_iter_20.caffemodel"
        assert _sha256(weights) == _sha256(origin.jobs_dir / model_id / weights.name)
        again = client.post(f"/api/v1/models/{model_id}/publish", {"store_dir": "store", "name": ENTRY})
        assert again.status == 422 and "already exists" in again.json()["error"]["message"]
        assert "libtorch" not in Path(f"/proc/{origin.process.pid}/maps").read_text()

        # The origin itself fine-tunes from the entry, imported from the store folder in its data root.
        local_import = created_id(client.post("/api/v1/store/import", {"store": "store", "name": ENTRY}))
        assert client.wait_status(local_import)["status"] == "done"
        tuned = created_id(client.post("/api/v1/models", {
            "dataset": dataset_id, "pretrained": local_import, "max_iter": 2, "batch_size": 2}))

        with served_store(data / "store") as store_url, running_server(
                tmp_path / "mirror-jobs", [mirror_data],
                env={"DIGITSLITE_STORE_URLS": store_url}) as mirror:
            remote = mirror.client()
            stores = remote.get("/api/v1/store/models").json()["stores"]
            assert [store["url"] for store in stores] == [str(embedded_store_dir()), store_url]
            listed = stores[1]
            assert listed["reachable"] and [model["id"] for model in listed["models"]] == [ENTRY]
            model = listed["models"][0]
            assert model["name"] == "tiny" and model["task"] == "semantic-segmentation"
            dataset_info = json.loads((origin.jobs_dir / dataset_id / "dataset" / "dataset.json").read_text())
            assert model["classes"] == dataset_info["classes"]
            assert model["metrics"]["iteration"] == 20 and "mean_iu" in model["metrics"]
            assert model["license"] == "CC0" and model_id in model["source"]
            assert model["size_exact"] and model["size"] > weights.stat().st_size
            assert model["weights"] == "included"

            imported = created_id(remote.post("/api/v1/store/import", {"store": store_url, "name": ENTRY,
                                                                        "job_name": "from the origin"}))
            job = remote.wait_status(imported)
            assert (job["status"], job["progress"], job["name"]) == ("done", 1.0, "from the origin")
            log = remote.get(f"/api/v1/jobs/{imported}/log").body.decode()
            assert f"fetching {weights.name}" in log and "checksums verified" in log
            copy = mirror.jobs_dir / imported / "weights.caffemodel"
            assert _sha256(copy) == _sha256(weights)

            names, original = _class_map(client, original_infer)
            imported_names, predicted = _class_map(remote, _infer(remote, imported, image))
            assert imported_names == names and len(names) > 1
            np.testing.assert_array_equal(predicted, original)

            content = bytearray(weights.read_bytes())
            content[len(content) // 2] ^= 0xFF
            weights.write_bytes(bytes(content))
            tampered = created_id(remote.post("/api/v1/store/import", {"store": store_url, "name": ENTRY}))
            message = _failure(remote, tampered)
            assert f"{weights.name} from {store_url}/{ENTRY}/{weights.name}: checksum mismatch" in message
            left = sorted(path.name for path in (mirror.jobs_dir / tampered).iterdir())
            assert not [name for name in left if name.endswith(".caffemodel") or "entry" in name], left
            refused = remote.post(f"/api/v1/models/{tampered}/infer", {"folder": str(mirror_data)})
            assert refused.status == 422 and "not imported" in refused.json()["error"]["message"]

        finished = client.wait_status(tuned)
        assert finished["status"] == "done", finished["error"]
        assert "network.prototxt" in {path.name for path in (origin.jobs_dir / local_import).iterdir()}


def test_unreachable_stores_and_hosts_fail_fast_with_the_way_round(tmp_path):
    data = tmp_path / "data"
    store = data / "store"
    entry = write_tiny_entry(store / "remote-tiny")
    add_to_master(store, "remote-tiny")
    weights = data / "copies" / "weights.caffemodel"
    weights.parent.mkdir()
    shutil.move(entry / "weights.caffemodel", weights)
    info = json.loads((entry / "info.json").read_text())
    remote = closed_port_url()
    info["files"]["weights.caffemodel"]["url"] = f"{remote}/weights.caffemodel"
    (entry / "info.json").write_text(json.dumps(info))
    nowhere = closed_port_url()
    fetch_hosts = remote.removeprefix("http://")  # a server fetches a url's host only when configured to
    env = {"DIGITSLITE_STORE_URLS": nowhere, "DIGITSLITE_STORE_FETCH_HOSTS": fetch_hosts}
    with running_server(tmp_path / "jobs", [data], env=env) as server:
        client = server.client()
        started = time.monotonic()
        listing = client.get("/api/v1/store/models")
        assert listing.status == 200 and time.monotonic() - started < 5
        embedded, unreachable = listing.json()["stores"]
        assert embedded["reachable"] and {"bvlc_alexnet", "fcn-alexnet", "fcn8s-voc"} <= {
            model["id"] for model in embedded["models"]}
        assert unreachable == {"url": nowhere, "reachable": False, "msg": "", "models": [],
                               "error": unreachable["error"]}
        assert f"cannot reach {nowhere}/master.json" in unreachable["error"]

        started = time.monotonic()
        failed = created_id(client.post("/api/v1/store/import", {"store": str(store), "name": "remote-tiny"}))
        message = _failure(client, failed)
        assert time.monotonic() - started < 20
        assert "cannot download" in message and "DIGITSLITE_STORE_URLS" in message
        assert "weights_file" in message

        local = created_id(client.post("/api/v1/store/import", {"store": str(store), "name": "remote-tiny",
                                                               "weights_file": str(weights)}))
        assert client.wait_status(local)["status"] == "done"
        installed = json.loads((server.jobs_dir / local / "dataset.json").read_text())
        assert installed["classes"] == CLASSES
        cloned = created_id(client.post(f"/api/v1/jobs/{local}/clone", {"job_name": "imported again"}))
        job = client.wait_status(cloned)
        assert (job["status"], job["name"]) == ("done", "imported again")


def test_the_web_server_is_a_store_and_refuses_stores_it_does_not_know(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with running_server(tmp_path / "jobs", [data]) as server:
        client = server.client()
        listed = subprocess.run([sys.executable, "-m", "digitslite", "store", "list", f"{server.url}/store",
                                 "--json"], capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        (store,) = json.loads(listed.stdout)["stores"]
        master = json.loads((embedded_store_dir() / "master.json").read_text())
        assert store["reachable"] and [model["id"] for model in store["models"]] == master["children"]
        assert all(model["error"] is None for model in store["models"])

        deploy = (embedded_store_dir() / "fcn8s-voc" / "deploy.prototxt").read_bytes()
        part = client.request("GET", "/store/fcn8s-voc/deploy.prototxt", headers={"Range": "bytes=100-199"})
        assert part.status == 206 and part.body == deploy[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(deploy)}"
        assert client.get("/store/.hidden/info.json").status == 404
        assert client.get("/store/../setup.py").status == 404

        def refused(path: str, payload: dict, status: int, field: str) -> str:
            response = client.post(path, payload)
            assert response.status == status and response.json()["error"]["field"] == field, response.body
            return response.json()["error"]["message"]

        assert "not one of this server's stores" in refused(
            "/api/v1/store/import", {"store": "http://192.0.2.1/store", "name": "x"}, 422, "store")
        refused("/api/v1/store/import", {"store": "/etc", "name": "x"}, 403, "store")
        embedded = str(embedded_store_dir())
        refused("/api/v1/store/import", {"store": embedded, "name": "../x"}, 422, "name")
        refused("/api/v1/store/import", {"store": embedded, "name": "x", "nme": 1}, 422, "nme")
        refused("/api/v1/pretrained/nope/convolutionalize", {}, 422, "classifier")
        refused("/api/v1/models/nope/publish", {"store_dir": "store", "name": "x"}, 422, "job_id")


ALEXNET_FC6 = """
name: "fc6_head"
layer { name: "pool5" type: "Input" top: "pool5" input_param { shape { dim: 1 dim: 256 dim: 6 dim: 6 } } }
layer { name: "fc6" type: "InnerProduct" bottom: "pool5" top: "fc6" inner_product_param { num_output: 4096 } }
layer { name: "relu6" type: "ReLU" bottom: "fc6" top: "fc6" }
"""


def _alexnet_store(peer, store: Path) -> Path:
    """A store holding BVLC AlexNet's deploy net with random weights; returns the weights."""
    entry = store / "bvlc_alexnet"
    entry.mkdir(parents=True)
    shutil.copyfile(peer("caffe__bvlc_alexnet__deploy.prototxt"), entry / "deploy.prototxt")
    net = read_net(entry / "deploy.prototxt")
    rng = np.random.default_rng(11)
    weights = {name: [rng.standard_normal(shape, dtype=np.float32) * 0.01 for shape in shapes]
               for name, shapes in param_shapes(net).items() if shapes}
    write_caffemodel(entry / "bvlc_alexnet.caffemodel", net, weights)
    write_info(entry, {"name": "random AlexNet", "framework": "caffe", "task": "classification",
                       "model file": "deploy.prototxt", "deploy file": "deploy.prototxt",
                       "snapshot file": "bvlc_alexnet.caffemodel"})
    return entry / "bvlc_alexnet.caffemodel"


@pytest.mark.slow
def test_convolutionalize_through_the_api_makes_fc6_a_convolution(tmp_path, peer):
    data = tmp_path / "data"
    classifier_weights = _alexnet_store(peer, data / "store")
    with running_server(tmp_path / "jobs", [data]) as server:
        client = server.client()
        imported = client.post("/api/v1/store/import", {"store": "store", "name": "bvlc_alexnet"})
        classifier = created_id(imported)
        made = created_id(client.post(f"/api/v1/pretrained/{classifier}/convolutionalize",
                                      {"num_classes": 5}))
        job = client.wait_status(made, timeout=120)
        assert job["status"] == "done", job["error"]
        assert job["name"] == "fcn_alexnet from bvlc_alexnet" and job["depends_on"] == [classifier]
        log = client.get(f"/api/v1/jobs/{made}/log").body.decode()
        assert "fc6: coerced" in log and "fc8: dropped" in log
    folder = server.jobs_dir / made
    network = read_net(folder / "network.prototxt")
    assert [layer.convolution_param.num_output for layer in network.layer if layer.name == "score_fr"] == [5]
    assert (folder / "solver.prototxt").is_file()

    fcn = CaffeNet(read_net(folder / "deploy.prototxt"), input_shapes={"data": (1, 3, 227, 227)})
    fcn.load_weights(folder / "weights.caffemodel")
    head = CaffeNet(parse_net(ALEXNET_FC6))
    head.load_weights(classifier_weights)
    image = torch.from_numpy(np.random.default_rng(2).uniform(0, 255, (1, 3, 227, 227)).astype(np.float32))
    with torch.no_grad():
        blobs = fcn.forward({"data": image}, keep=["pool5", "fc6"])
        pool5, conv6 = blobs["pool5"], blobs["fc6"]
        row, column = conv6.shape[2] - 1, conv6.shape[3] - 1
        window = pool5[:, :, row:row + 6, column:column + 6].contiguous()
        fc6 = head.forward({"pool5": window})["fc6"]
    np.testing.assert_allclose(conv6[0, :, row, column].numpy(), fc6[0].numpy(), rtol=1e-4, atol=1e-5)
