"""Colorization through the job server: a colorization dataset job, colorize_classes trained with the
colour scores in its metrics, the model page showing them, and an inference job whose page decodes
the stored distribution again at the temperature asked for."""
import io

import numpy as np
import pytest
from PIL import Image

from digitslite.datasets.colorize.demo import write_colour_demo
from tests.server.harness import created_id, running_server

COLOUR_SCORES = {"ab_error", "ab_auc", "psnr", "colourfulness", "truth_colourfulness"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("colorize")
    demo = write_colour_demo(root / "data" / "colour", count=8, val_count=4, width=32, height=32)["path"]
    with running_server(root / "jobs", [root / "data"]) as server:
        client = server.client()
        dataset_id = created_id(client.post("/api/v1/datasets", {
            "name": "colour", "task": "colorization", "space": "lab", "images": f"{demo}/images",
            "val_images": f"{demo}/val_images"}))
        assert client.wait_status(dataset_id)["status"] == "done"
        model_id = created_id(client.post("/api/v1/models", {
            "name": "bins", "dataset": dataset_id, "network": "colorize_classes", "batch_size": 2,
            "max_iter": 10, "snapshot_interval": 10, "test_interval": 5, "seed": 7}))
        assert client.wait_status(model_id, timeout=300)["status"] == "done"
        yield server, client, demo, model_id


def test_validation_records_carry_the_colour_scores_and_the_page_shows_them(trained):
    _, client, _, model_id = trained
    records = client.get(f"/api/v1/jobs/{model_id}/metrics").json()["metrics"]
    val = [record for record in records if record["phase"] == "val"]
    assert val and all(set(record) >= COLOUR_SCORES for record in val)
    assert all(0 <= record["ab_auc"] <= 1 and "mean_iu" not in record for record in val)
    page = client.get(f"/models/{model_id}").body.decode()
    assert 'id="stat-auc"' in page and 'id="chart-colour"' in page and 'id="per-class"' not in page


def test_inference_colourises_and_decodes_again_at_another_temperature(trained):
    _, client, demo, model_id = trained
    image = f"{demo}/val_images/0000.png"
    with open(image, "rb") as file:
        infer_id = created_id(client.post_form(f"/api/v1/models/{model_id}/infer", {},
                                               [("images", "0000.png", file.read())]))
    assert client.wait_status(infer_id, timeout=120)["status"] == "done"
    results = client.get(f"/api/v1/jobs/{infer_id}/files/results.json").json()
    assert results["task"] == "colorization" and results["method"] == "classes"
    (entry,) = results["images"]
    assert entry["psnr"] > 0 and results["scores"]["ab_auc"] is not None

    def picture(**query) -> np.ndarray:
        answer = client.get(f"/pages-api/inference/{infer_id}/colour/0/colourised", **query)
        assert answer.status == 200, answer.body
        return np.asarray(Image.open(io.BytesIO(answer.body)))

    stored = picture()
    assert (picture(temperature=results["temperature"]) == stored).all()
    assert not (picture(temperature=2.0) == stored).all()
    assert client.get(f"/pages-api/inference/{infer_id}/colour/0/colourised", temperature=0).status == 400
    download = client.get(f"/pages-api/inference/{infer_id}/colour/0/colourised", temperature=1, download=1)
    assert "attachment" in download.headers["content-disposition"]
    page = client.get(f"/inference/{infer_id}").body.decode()
    assert 'id="temperature"' in page and "PSNR" in page and "Original" in page
