"""Item 13: a model request whose network or solver would fail in the worker is refused before it is
queued, with the field and the reason: the net check runs in the API, values must fit Caffe's
solver, and training must fit this machine's memory."""
import re

import pytest

from digitslite.networks import get_network
from tests.hostile.conftest import dataset_body, job_folders


@pytest.fixture
def dataset_id(client, demo) -> str:
    return client.post("/api/v1/datasets", json=dataset_body(demo)).get_json()["jobs"][0]["id"]


def _tiny(old: str = "", new: str = "") -> str:
    text = get_network("fcn_tiny").network_file.read_text()
    assert old in text
    return text.replace(old, new, 1)


def _refused(client, tmp_path, body: dict, field: str) -> str:
    before = job_folders(tmp_path / "jobs")
    response = client.post("/api/v1/models", json=body)
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["field"] == field, error
    assert job_folders(tmp_path / "jobs") == before
    return error["message"]


@pytest.mark.parametrize(("old", "new", "words"), [
    ('type: "Convolution"', 'type: "Convolutoin"', "Convolutoin"),
    ('type: "Convolution"', 'type: "Python"', "Python"),
    ("kernel_size: 3", "kernel_size: 0", "kernel"),
    ('bottom: "data"', 'bottom: "nowhere"', "nowhere"),
])
def test_a_network_that_cannot_build_is_refused_with_its_line(client, dataset_id, tmp_path, old, new, words):
    message = _refused(client, tmp_path, {"dataset": dataset_id, "network_prototxt": _tiny(old, new)},
                       "network_prototxt")
    assert words in message and re.match(r"network_prototxt:\d+:\d+: ", message)


@pytest.mark.parametrize(("field", "value"), [("max_iter", 2**31), ("stepsize", 2**40), ("seed", 2**64),
                                              ("iter_size", 10**9), ("batch_size", 2**32)])
def test_solver_values_beyond_caffes_range_are_refused(client, dataset_id, tmp_path, field, value):
    body = {"dataset": dataset_id, "network": "fcn_tiny", field: value}
    if field == "stepsize":
        body["lr_policy"], body["gamma"] = "step", 0.1
    assert "at most" in _refused(client, tmp_path, body, field) or field == "seed"


def test_training_that_cannot_fit_in_memory_is_refused(client, dataset_id, tmp_path):
    message = _refused(client, tmp_path, {"dataset": dataset_id, "network": "fcn_tiny", "batch_size": 100000},
                       "batch_size")
    assert "GiB" in message and "lower batch_size" in message
    huge = _tiny("num_output: 16", "num_output: 1000000000")
    body = {"dataset": dataset_id, "network_prototxt": huge}
    message = _refused(client, tmp_path, body, "network_prototxt")
    assert "num_output" in message


def test_a_sensible_request_is_still_queued(client, dataset_id):
    body = {"dataset": dataset_id, "network": "fcn_tiny", "batch_size": 4}
    response = client.post("/api/v1/models", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
