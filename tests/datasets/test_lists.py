"""Datasets from text-file lists (`image_path label_path` per line, as DIGITS and SegNet's CamVid ship
them): relative paths read from the list's folder, the list's pairs and only those, and bad lines
reported in the same validation report as folder problems."""
import subprocess
import sys

import numpy as np
import pytest

from digitslite.datasets import DatasetInvalidError, DatasetOptions, check_dataset, create_dataset
from digitslite.errors import UserError
from tests.datasets.helpers import datum, decoded, make_folders, read_lmdb, sources_by_key


def _lists(root, written):
    """train.txt (relative paths, from a subfolder) with all but the last pair, val.txt (absolute) with
    the last one."""
    names = sorted(written)
    lists = root / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("# image label\n" + "".join(
        f"../images/{name}.png ../labels/{name}.png\n" for name in names[:-1]) + "\n")
    (lists / "val.txt").write_text(f"{root / 'images' / names[-1]}.png  {root / 'labels' / names[-1]}.png\n")
    return lists


def test_a_dataset_from_lists_holds_the_listed_pairs(tmp_path):
    written = make_folders(tmp_path, 5)
    make_folders(tmp_path, 2, prefix="unlisted_", seed=9)  # elsewhere, and not listed: not taken
    lists = _lists(tmp_path, written)
    summary = create_dataset(DatasetOptions(train_list=lists / "train.txt", val_list=lists / "val.txt",
                                            seed=1, workers=1), tmp_path / "ds")
    assert summary.info["counts"] == {"train": 4, "val": 1}
    assert summary.info["sources"]["train_list"] == str(lists / "train.txt")
    for stage, names in (("train", sorted(written)[:-1]), ("val", sorted(written)[-1:])):
        sources = sources_by_key(tmp_path / "ds", stage)
        assert sorted(sources.values()) == names
        for key, value in read_lmdb(tmp_path / "ds" / f"{stage}_db" / "labels"):
            np.testing.assert_array_equal(decoded(datum(value)), written[sources[key]][1])


def test_bad_lines_and_missing_files_are_reported_with_their_line(tmp_path):
    written = make_folders(tmp_path, 3)
    lists = _lists(tmp_path, written)
    with open(lists / "train.txt", "a") as listing:
        listing.write("../images/000.png\n../images/404.png ../labels/404.png\n")
    report = check_dataset(DatasetOptions(train_list=lists / "train.txt", val_percent=0, workers=1))
    problems = {problem.kind: problem.examples for problem in report.problems}
    train = lists / "train.txt"
    assert problems["list_line"] == [f"{train}:5: ../images/000.png"]
    assert problems["listed_missing"] == [
        f"{train}:6: {lists / '../images/404.png'}, {lists / '../labels/404.png'}"]
    with pytest.raises(DatasetInvalidError):
        create_dataset(DatasetOptions(train_list=train, val_percent=0, workers=1), tmp_path / "ds")


def test_lists_and_folders_do_not_mix(tmp_path):
    written = make_folders(tmp_path, 2)
    lists = _lists(tmp_path, written)
    with pytest.raises(UserError, match="either --images/--labels or --train-list"):
        check_dataset(DatasetOptions(images=tmp_path / "images", labels=tmp_path / "labels",
                                     train_list=lists / "train.txt"))
    with pytest.raises(UserError, match="one source of validation pairs"):
        check_dataset(DatasetOptions(train_list=lists / "train.txt", val_list=lists / "val.txt",
                                     val_percent=5))
    with pytest.raises(UserError, match="--train-list FILE"):
        check_dataset(DatasetOptions(images=tmp_path / "images"))


def test_the_cli_takes_lists(tmp_path):
    lists = _lists(tmp_path, make_folders(tmp_path, 4))
    done = subprocess.run([sys.executable, "-m", "digitslite", "dataset", "create", "--train-list",
                           str(lists / "train.txt"), "--val-list", str(lists / "val.txt"), "--workers", "1",
                           "-o", str(tmp_path / "ds")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(read_lmdb(tmp_path / "ds" / "train_db" / "features")) == 3


def test_a_list_cannot_reach_files_outside_the_server_data_roots(tmp_path):
    root = tmp_path / "root"
    lists = _lists(root, make_folders(root, 3))
    outside = make_folders(tmp_path / "elsewhere", 1)
    with open(lists / "train.txt", "a") as listing:
        listing.write(f"{tmp_path}/elsewhere/images/000.png {tmp_path}/elsewhere/labels/000.png\n")
    report = check_dataset(DatasetOptions(train_list=lists / "train.txt", val_percent=0, workers=1,
                                          within=(root.resolve(),)))
    problems = {problem.kind: problem.examples for problem in report.problems}
    assert list(problems) == ["outside_roots"] and len(outside) == 1
    where = f"{lists / 'train.txt'}:5: {tmp_path}/elsewhere/images/000.png"
    assert problems["outside_roots"][0].startswith(where)
