"""`digitslite dataset create` and `digitslite demo` on the command line."""
import json

import numpy as np
from click.testing import CliRunner

from digitslite.cli import main
from tests.datasets.helpers import leftovers, make_folders, save_image


def run(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def folder_args(root):
    return ["--images", root / "images", "--labels", root / "labels", "--val-percent", 0, "--seed", 3,
            "--workers", 1]


def test_create_prints_a_summary_with_the_class_table(tmp_path):
    make_folders(tmp_path, 3)

    result = run("dataset", "create", *folder_args(tmp_path), "-o", tmp_path / "ds")

    assert result.exit_code == 0, result.output
    assert f"dataset written to {tmp_path / 'ds'}" in result.output
    assert "3 train and 0 val pairs, 3 classes, images 12x10, encoding png" in result.output
    assert "class 2" in result.output and (tmp_path / "ds" / "dataset.json").is_file()


def test_create_json_is_dataset_json_plus_the_path(tmp_path):
    make_folders(tmp_path, 3)

    result = run("dataset", "create", *folder_args(tmp_path), "--json", "-o", tmp_path / "ds")

    payload = json.loads(result.output)
    assert payload["path"] == str(tmp_path / "ds")
    assert payload["counts"] == {"train": 3, "val": 0} and payload["seed"] == 3
    assert {key: value for key, value in payload.items() if key != "path"} == \
        json.loads((tmp_path / "ds" / "dataset.json").read_text())


def test_bad_folders_print_the_report_and_one_error_line_without_traceback(tmp_path):
    make_folders(tmp_path, 3)
    save_image(tmp_path / "images" / "extra.png", np.zeros((10, 12, 3), np.uint8))

    result = run("dataset", "create", *folder_args(tmp_path), "-o", tmp_path / "ds")

    assert result.exit_code == 1
    assert "ERROR unpaired_image: 1 images without a label" in result.output
    assert f"{tmp_path}/images/extra.png (no {tmp_path}/labels/extra.*)" in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1 and "images without a label" in error_lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "ds").exists() and leftovers(tmp_path) == []


def test_dry_run_prints_the_report_and_writes_nothing(tmp_path):
    make_folders(tmp_path, 3)

    result = run("dataset", "create", *folder_args(tmp_path), "--dry-run", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True and report["problems"] == []
    assert [entry["name"] for entry in report["classes"]] == ["class 0", "class 1", "class 2"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["images", "labels"]


def test_missing_output_folder_is_a_one_line_error(tmp_path):
    make_folders(tmp_path, 1)

    result = run("dataset", "create", *folder_args(tmp_path))

    assert result.exit_code == 1
    assert result.output.strip() == \
        "error: give the output folder with -o/--out (or check only with --dry-run)"


def test_demo_writes_folders_that_the_printed_command_turns_into_a_dataset(tmp_path):
    result = run("demo", "--out", tmp_path / "demo", "--count", 3, "--val-count", 1, "--width", 48,
                 "--height", 40)

    assert result.exit_code == 0, result.output
    command = result.output.splitlines()[-1].split()
    assert command[0] == "digitslite" and command[-1] == "DATASET_DIR"
    created = run(*command[1:-1], tmp_path / "ds", "--workers", 1)

    assert created.exit_code == 0, created.output
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert info["counts"] == {"train": 3, "val": 1} and info["classes"][0] == "sky"
