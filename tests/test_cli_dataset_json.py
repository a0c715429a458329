"""The dataset.json reader the train and net commands share."""
import json

import pytest

from digitslite.cli._dataset import DatasetJson
from digitslite.errors import UserError


def test_labels_are_the_class_count_and_the_ignore_value(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({"classes": ["a", "b", "c"], "ignore_label": 11}))
    assert DatasetJson.read(tmp_path).labels() == (3, 11)


def test_without_an_ignore_value_it_is_caffes_255(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({"classes": ["a"]}))
    assert DatasetJson.read(tmp_path).labels() == (1, 255)


def test_a_folder_without_dataset_json_reads_as_none_until_its_classes_are_needed(tmp_path):
    dataset = DatasetJson.read(tmp_path)
    assert dataset.info is None
    with pytest.raises(UserError, match=r"dataset\.json: cannot read the class list .*dataset create"):
        dataset.labels()


def test_a_broken_dataset_json_is_refused_naming_the_file(tmp_path):
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(UserError, match=r"dataset\.json: cannot read it"):
        DatasetJson.read(tmp_path)
