"""POST /api/v1/datasets with task colorization: a dataset job from a folder of colour photos, and
the refusals of fields that belong to the other task."""
import io

import numpy as np
import pytest
from PIL import Image

from digitslite.datasets.colorize.demo import write_colour_demo
from tests.datasets.helpers import save_image
from tests.server.harness import created_id, form_check, running_server


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("colorize_api")
    write_colour_demo(root / "data" / "scenes", count=6, val_count=2, width=32, height=32)
    grey = root / "data" / "grey"
    save_image(grey / "a.png", np.full((8, 8, 3), 90, dtype=np.uint8))
    with running_server(root / "jobs", [root / "data"]) as server:
        yield server.client(), root


def _error(response, field):
    assert response.status == 422, response.body
    error = response.json()["error"]
    assert error["field"] == field, error
    return error["message"]


def test_a_colorization_dataset_job(world):
    client, root = world
    scenes = root / "data" / "scenes"
    job_id = created_id(client.post("/api/v1/datasets", {
        "task": "colorization", "images": str(scenes / "images"), "val_images": str(scenes / "val_images"),
        "bins": "18x18", "seed": 2}))
    assert client.wait_status(job_id)["status"] == "done"
    info = client.get(f"/api/v1/jobs/{job_id}/files/dataset/dataset.json").json()
    assert info["task"] == "colorization" and info["counts"] == {"train": 6, "val": 2}
    assert info["bins"]["choice"] == "18x18" and info["bins"]["count"] == 324
    assert client.job(job_id)["params"]["request"]["task"] == "colorization"


def test_fields_of_the_other_task_are_refused(world):
    client, root = world
    images = str(root / "data" / "scenes" / "images")
    message = _error(client.post("/api/v1/datasets", {"task": "colorization", "images": images,
                                                      "labels": images}), "labels")
    assert "does not apply to task colorization" in message
    assert "does not apply to task segmentation" in _error(
        client.post("/api/v1/datasets", {"images": images, "labels": images, "bins": "paper"}), "bins")
    assert "one of" in _error(client.post("/api/v1/datasets", {"task": "colorization", "images": images,
                                                               "space": "hsv"}), "space")


def test_a_folder_of_grey_photos_fails_its_job_with_the_report(world):
    client, root = world
    job_id = created_id(client.post("/api/v1/datasets", {
        "task": "colorization", "images": str(root / "data" / "grey"), "val_percent": 0}))
    job = client.wait_status(job_id)
    assert job["status"] == "failed" and "dataset not created" in job["error"]["message"]
    assert not (root / "jobs" / job_id / "dataset").exists()
    report = job["check_report"]
    assert report["task"] == "colorization"
    assert report["found"]["train"] == 1 and report["counts"]["train"] == 0
    assert [problem["kind"] for problem in report["problems"]] == ["grey_image", "empty_split"]


def test_the_form_check_and_the_dataset_page(world):
    client, root = world
    scenes = root / "data" / "scenes"
    form = client.get("/datasets/new").body.decode()
    assert 'name="task" value="colorization"' in form and 'name="bins"' in form
    checked = form_check(client, {"task": "colorization", "images": str(scenes / "images"),
                                  "val_percent": "0"}).json()
    assert checked["report"]["ok"] and checked["report"]["counts"] == {"train": 6, "val": 0}
    assert checked["report"]["histogram_picture"].startswith("data:image/png;base64,")
    job_id = created_id(client.post("/api/v1/datasets", {
        "task": "colorization", "images": str(scenes / "images"), "val_images": str(scenes / "val_images"),
        "seed": 3}))
    assert client.wait_status(job_id)["status"] == "done"
    page = client.get(f"/datasets/{job_id}", stage="val").body.decode()
    assert "Chroma of the training photos" in page and "chroma_histogram.png" in page
    assert f"/pages-api/datasets/{job_id}/records/val/1/colour" in page
    # the stored planes back in sRGB are the photo, up to the 8-bit Lab storage
    colour = client.get(f"/pages-api/datasets/{job_id}/records/val/1/colour")
    shown = np.asarray(Image.open(io.BytesIO(colour.body)).convert("RGB"), dtype=int)
    original = np.asarray(Image.open(scenes / "val_images" / "0001.png"), dtype=int)
    assert np.abs(shown - original).mean() < 1.5
    image = client.get(f"/pages-api/datasets/{job_id}/records/val/1/image")
    assert np.asarray(Image.open(io.BytesIO(image.body))).ndim == 2  # the lightness plane
