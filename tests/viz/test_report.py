"""`digitslite report`: a job folder's metrics drawn as one figure (curves, confusion, per-class IU)."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from digitslite.cli import main
from digitslite.datasets.create import create_dataset
from digitslite.datasets.demo import write_demo
from digitslite.datasets.options import DatasetOptions
from digitslite.viz.report import draw_report, read_job_metrics

CLASSES = ["road", "car", "sky"]
# Hand-written records: two display lines, a validation before and after, a second test net's line
# (not drawn) and a line still being written.
RECORDS = [
    {"iteration": 0, "phase": "train", "loss": 2.0, "lr": 0.01},
    {"iteration": 0, "phase": "val", "loss": 1.9, "pixel_accuracy": 0.2, "mean_iu": 0.1,
     "per_class_iu": [0.1, 0.1, None], "confusion_matrix": [[1, 7, 0], [4, 0, 0], [0, 0, 0]]},
    {"iteration": 10, "phase": "train", "loss": 1.0, "lr": 0.01},
    {"iteration": 20, "phase": "val", "loss": 0.8, "pixel_accuracy": 0.75, "mean_iu": 0.55,
     "per_class_iu": [0.6, 0.5, None], "confusion_matrix": [[6, 2, 0], [1, 3, 0], [0, 0, 0]]},
    {"iteration": 20, "phase": "val", "test_net": 1, "loss": 5.0},
]


@pytest.fixture
def job(tmp_path):
    folder = tmp_path / "job"
    folder.mkdir()
    lines = "".join(json.dumps(record) + "\n" for record in RECORDS)
    (folder / "metrics.jsonl").write_text(lines + '{"iteration": 30, "phase": "tr')
    (folder / "dataset.json").write_text(json.dumps({"classes": CLASSES}))
    return folder


def test_the_figure_shows_the_records_of_the_job(job):
    metrics = read_job_metrics(job)
    assert [record["iteration"] for record in metrics.train] == [0, 10]
    assert [record["iteration"] for record in metrics.val] == [0, 20]

    curves, confusion, iu, quality, _colorbar = draw_report(metrics, "job").axes
    drawn = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
             for line in [*curves.get_lines(), *quality.get_lines()]}
    assert drawn == {"train loss": ([0, 10], [2.0, 1.0]), "validation loss": ([0, 20], [1.9, 0.8]),
                     "validation mean_iu": ([0, 20], [0.1, 0.55]),
                     "validation pixel_accuracy": ([0, 20], [0.2, 0.75])}
    # The last validation's confusion, each true class's row as fractions (no sky pixels: zeros).
    assert np.allclose(confusion.images[0].get_array(), [[0.75, 0.25, 0], [0.25, 0.75, 0], [0, 0, 0]])
    assert [label.get_text() for label in confusion.get_yticklabels()] == CLASSES
    assert [bar.get_width() for bar in iu.patches] == [0.6, 0.5, 0.0]
    assert [label.get_text() for label in iu.get_yticklabels()] == CLASSES


def test_report_writes_pdf_and_png_and_refuses_other_suffixes(job, tmp_path):
    for name in ("report.pdf", "report.png"):
        result = CliRunner().invoke(main, ["report", str(job), "-o", str(tmp_path / name), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["last_val"]["mean_iu"] == 0.55
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")
    assert Image.open(tmp_path / "report.png").size == (15 * 150, int(4.5 * 150))
    refused = CliRunner().invoke(main, ["report", str(job), "-o", str(tmp_path / "report.jpg")])
    assert refused.exit_code == 1 and ".pdf, .png, .svg" in refused.output
    assert not (tmp_path / "report.jpg").exists()


def test_a_folder_without_metrics_is_refused_with_the_fix(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path), "-o", str(tmp_path / "r.png")])
    assert result.exit_code == 1 and "no metrics.jsonl" in result.output
    assert "digitslite train -o" in result.output


@pytest.mark.slow
def test_a_real_training_folder(tmp_path):
    """fcn_tiny trained a few iterations by `digitslite train`: the report reads what it wrote."""
    demo = tmp_path / "demo"
    write_demo(demo, count=4, val_count=2, width=48, height=32, seed=3)
    summary = create_dataset(DatasetOptions(images=demo / "images", labels=demo / "labels",
                                            val_images=demo / "val_images", val_labels=demo / "val_labels",
                                            workers=1), tmp_path / "dataset")
    job = tmp_path / "job"
    trained = CliRunner().invoke(main, ["train", "--dataset", str(summary.path), "--network", "fcn_tiny",
                                        "--max-iter", "4", "--batch-size", "2", "--display", "2",
                                        "--test-interval", "2", "--test-iter", "1", "--cpu", "-o", str(job)])
    assert trained.exit_code == 0, trained.output
    result = CliRunner().invoke(main, ["report", str(job), "-o", str(tmp_path / "report.png"), "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
    last_val = [record for record in records if record["phase"] == "val"][-1]
    shown = json.loads(result.stdout)
    assert shown["last_val"] == {key: last_val[key] for key in shown["last_val"]}
    assert shown["train_records"] == sum(record["phase"] == "train" for record in records)
    assert Image.open(tmp_path / "report.png").size == (15 * 150, int(4.5 * 150))
