"""Publish a finished training job into a store, serve it, list it and import it back elsewhere."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from digitslite.caffe.prototxt import read_net, read_solver
from digitslite.cli import main
from digitslite.datasets.demo import CLASSES as DEMO_CLASSES
from digitslite.errors import UserError
from digitslite.modelstore.format import ChecksumError
from digitslite.modelstore.importer import import_model
from digitslite.modelstore.listing import list_stores
from digitslite.modelstore.publish import publish_job
from digitslite.networks import get_network, render_network_text
from tests.store.helpers import (
    CLASSES,
    HEIGHT,
    PALETTE,
    WIDTH,
    job_deploy,
    scores,
    served_store,
    write_finished_job,
)


@pytest.fixture
def job(tmp_path):
    snapshot = write_finished_job(tmp_path / "job", tmp_path / "dataset")
    return {"dir": tmp_path / "job", "dataset": tmp_path / "dataset", "snapshot": snapshot}


def test_publish_writes_a_checksummed_digits_style_entry(job, tmp_path):
    info = publish_job(job["dir"], tmp_path / "store", "tiny-demo", dataset=job["dataset"],
                       license="CC-BY-4.0")
    entry = tmp_path / "store" / "tiny-demo"
    assert sorted(path.name for path in entry.iterdir()) == [
        "deploy.prototxt", "info.json", "labels.txt", "solver.prototxt", "tiny_iter_20.caffemodel",
        "train_val.prototxt"]
    assert json.loads((tmp_path / "store" / "master.json").read_text())["children"] == ["tiny-demo"]
    assert (info.name, info.snapshot_file, info.classes, info.palette) == (
        "tiny demo model", "tiny_iter_20.caffemodel", CLASSES, PALETTE)
    assert info.metrics == {"iteration": 20, "loss": 0.8, "mean_iu": 0.42, "pixel_accuracy": 0.8}
    assert info.data["input size"] == {"channels": 3, "height": HEIGHT, "width": WIDTH}
    assert set(info.files) == {path.name for path in entry.iterdir()} - {"info.json"}
    assert all(set(record.digests) == {"sha256"} and record.size for record in info.files.values())
    crops = [list(layer.crop_param.offset) for layer in read_net(entry / "train_val.prototxt").layer
             if layer.type == "Crop"]
    assert crops == [[8]], "the published network carries its derived Crop offset (DIGITS and Caffe need it)"
    assert (entry / "labels.txt").read_text().splitlines() == CLASSES
    solver = read_solver(entry / "solver.prototxt")
    assert (solver.net, solver.base_lr) == ("train_val.prototxt", pytest.approx(0.01))


def test_published_model_is_listed_and_imported_by_another_server_with_equal_predictions(job, tmp_path):
    publish_job(job["dir"], tmp_path / "store", "tiny-demo", dataset=job["dataset"], note="demo data")
    original_deploy = job_deploy(job["dir"], (1, 3, HEIGHT, WIDTH), tmp_path / "original-deploy.prototxt")
    image = np.random.default_rng(1).uniform(0, 255, (1, 3, HEIGHT, WIDTH)).astype(np.float32)

    with served_store(tmp_path / "store") as url:
        (listing,) = list_stores([url])
        imported = import_model(url, "tiny-demo", tmp_path / "elsewhere" / "model")

    assert listing.reachable and [model.id for model in listing.models] == ["tiny-demo"]
    summary = listing.models[0]
    assert (summary.name, summary.classes, summary.metrics["mean_iu"], summary.note, summary.weights) == (
        "tiny demo model", CLASSES, 0.42, "demo data", "included")
    assert summary.size == sum(path.stat().st_size for path in (tmp_path / "store" / "tiny-demo").iterdir()
                               if path.name != "info.json")
    np.testing.assert_array_equal(scores(imported.deploy, imported.weights, image),
                                  scores(original_deploy, job["snapshot"], image))


def test_a_tampered_published_snapshot_is_refused(job, tmp_path):
    publish_job(job["dir"], tmp_path / "store", "tiny-demo", dataset=job["dataset"])
    weights = tmp_path / "store" / "tiny-demo" / "tiny_iter_20.caffemodel"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with served_store(tmp_path / "store") as url, pytest.raises(ChecksumError, match="checksum mismatch"):
        import_model(url, "tiny-demo", tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_an_earlier_snapshot_can_be_published(job, tmp_path):
    info = publish_job(job["dir"], tmp_path / "store", "early", dataset=job["dataset"], iteration=10)
    assert info.snapshot_file == "tiny_iter_10.caffemodel"
    assert info.metrics["mean_iu"] == 0.31
    with pytest.raises(UserError, match="no snapshot of iteration 15; choose one of: 10, 20"):
        publish_job(job["dir"], tmp_path / "store", "other", dataset=job["dataset"], iteration=15)


def test_publish_refuses_what_is_not_a_finished_job(job, tmp_path):
    publish_job(job["dir"], tmp_path / "store", "tiny-demo", dataset=job["dataset"])
    with pytest.raises(UserError, match="already exists; choose another name"):
        publish_job(job["dir"], tmp_path / "store", "tiny-demo", dataset=job["dataset"])
    with pytest.raises(UserError, match=r"no train_val\.prototxt \(nor a solver naming the network\)"):
        publish_job(job["dataset"], tmp_path / "store", "x", dataset=job["dataset"])
    with pytest.raises(UserError, match=r"no dataset\.json; give the folder of the dataset"):
        publish_job(job["dir"], tmp_path / "store", "x", dataset=tmp_path)
    assert sorted(path.name for path in (tmp_path / "store").iterdir()) == ["master.json", "tiny-demo"]


# ----------------------------------------------------------------------------------------------
# the acceptance path: a model trained on demo data, published, served, imported elsewhere


def _cli(*args) -> str:
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def demo_job(tmp_path):
    """fcn_tiny trained for 3 iterations on demo scenes with `digitslite demo | dataset create | train`."""
    scenes, dataset, job = tmp_path / "scenes", tmp_path / "dataset", tmp_path / "job"
    _cli("demo", "--out", scenes, "--count", 6, "--val-count", 2, "--width", 64, "--height", 48)
    _cli("dataset", "create", "--images", scenes / "images", "--labels", scenes / "labels",
         "--val-images", scenes / "val_images", "--val-labels", scenes / "val_labels",
         "--classes", scenes / "classes.txt", "--seed", 1, "--workers", 1, "-o", dataset)
    network = tmp_path / "fcn_tiny.prototxt"
    network.write_text(render_network_text("fcn_tiny", len(DEMO_CLASSES)))
    _cli("train", "--dataset", dataset, "--net", network, "--solver", get_network("fcn_tiny").solver_file,
         "--max-iter", 3, "--batch-size", 2, "--test-interval", 3, "--test-iter", 1, "--snapshot", 3,
         "--seed", 1, "--cpu", "-o", job)
    return {"job": job, "dataset": dataset, "image": next((scenes / "val_images").iterdir())}


@pytest.mark.slow
def test_a_model_trained_on_demo_data_round_trips_through_a_served_store(demo_job, tmp_path):
    job = demo_job["job"]
    publish_job(job, tmp_path / "store", "demo-fcn-tiny", dataset=demo_job["dataset"], license="CC0")
    photo = np.asarray(Image.open(demo_job["image"]).convert("RGB"), dtype=np.float32)
    image = np.ascontiguousarray(photo[:, :, ::-1].transpose(2, 0, 1)[None])  # BGR, N x C x H x W
    original_deploy = job_deploy(job, image.shape, tmp_path / "original-deploy.prototxt")
    original = scores(original_deploy, job / "snapshot_iter_3.caffemodel", image)

    with served_store(tmp_path / "store") as url:
        (listing,) = list_stores([url])
        imported = import_model(url, "demo-fcn-tiny", tmp_path / "second-server" / "model")

    (model,) = listing.models
    assert (model.classes, model.license, model.metrics["iteration"]) == (list(DEMO_CLASSES), "CC0", 3)
    assert 0 <= model.metrics["mean_iu"] <= 1
    np.testing.assert_array_equal(scores(imported.deploy, imported.weights, image), original)
