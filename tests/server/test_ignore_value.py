"""A dataset whose void pixels carry another ignore value than 255 (CamVid's 11, as SegNet ships it)
trains a standard network, as a job of the server or with `digitslite train`: the value reaches every
loss and Accuracy layer through `{{ignore_label}}`."""
import numpy as np
from click.testing import CliRunner
from PIL import Image

from digitslite.caffe.prototxt import read_net
from digitslite.cli import main
from digitslite.datasets.create import create_dataset
from digitslite.datasets.options import DatasetOptions
from digitslite.networks import get_network
from tests.server.harness import created_id, running_server

CLASSES = ("sky", "road", "car")
VOID = 11  # CamVid's void class, past the three classes


def _write_pairs(root, count: int = 4) -> None:
    """Index labels with every class and a void border; images whose colour follows the class."""
    rng = np.random.default_rng(3)
    for folder in ("images", "labels"):
        (root / folder).mkdir(parents=True)
    for number in range(count):
        label = rng.integers(0, len(CLASSES), size=(24, 32)).astype(np.uint8)
        label[:2, :] = VOID
        image = np.stack([label * 80, 255 - label * 60, np.full_like(label, 90)], axis=-1).astype(np.uint8)
        Image.fromarray(image, "RGB").save(root / "images" / f"scene{number}.png")
        Image.fromarray(label, "L").save(root / "labels" / f"scene{number}.png")
    (root / "classes.txt").write_text("".join(f"{name}\n" for name in CLASSES))


def test_a_dataset_with_ignore_value_11_trains_a_standard_network(tmp_path):
    data = tmp_path / "data" / "camvid"
    _write_pairs(data)
    with running_server(tmp_path / "jobs", [tmp_path / "data"]) as server:
        client = server.client()
        dataset = created_id(client.post("/api/v1/datasets", {
            "name": "void 11", "images": str(data / "images"), "labels": str(data / "labels"),
            "classes": str(data / "classes.txt"), "label_mode": "index", "ignore_label": VOID,
            "val_percent": 25}))
        assert client.wait_status(dataset)["status"] == "done"
        model = created_id(client.post("/api/v1/models", {
            "dataset": dataset, "network": "fcn_tiny", "batch_size": 1, "max_iter": 2, "test_interval": 2}))
        state = client.wait_status(model)
        assert state["status"] == "done", state.get("error")
        network = client.get(f"/api/v1/jobs/{model}/files/network.prototxt").body.decode()
        assert network.count(f"ignore_label: {VOID}") == 2  # SoftmaxWithLoss and Accuracy
        assert "ignore_label: 255" not in network

        # The model form's check: the template is filled with the dataset's value, a written 255 is flagged.
        template = get_network("fcn_tiny").network_file.read_text()
        written = template.replace("{{ignore_label}}", "255")
        for text, problem in ((template, None), (written, "ignores label 255")):
            checked = client.post_form("/pages-api/net-check", {"text": text, "dataset": dataset}).json()
            error = (checked.get("error") or {}).get("message")
            assert error is None if problem is None else problem in error, error


def test_digitslite_train_fills_the_datasets_ignore_value_into_a_standard_network(tmp_path):
    data = tmp_path / "camvid"
    _write_pairs(data)
    options = DatasetOptions(images=data / "images", labels=data / "labels", classes=data / "classes.txt",
                             label_mode="index", ignore_label=VOID, val_percent=25, workers=1)
    dataset = create_dataset(options, tmp_path / "dataset").path
    job = tmp_path / "job"
    result = CliRunner().invoke(main, ["train", "--dataset", str(dataset), "--network", "fcn_tiny",
                                       "--max-iter", "2", "--batch-size", "1", "--cpu", "-o", str(job)])
    assert result.exit_code == 0, result.output
    losses = [layer for layer in read_net(job / "train_val.prototxt").layer
              if layer.type in ("SoftmaxWithLoss", "Accuracy")]
    ignored = [(layer.loss_param if layer.type == "SoftmaxWithLoss" else layer.accuracy_param).ignore_label
               for layer in losses]
    assert ignored == [VOID, VOID]
