"""Item 3: paths a network names (mean files, sources) follow the data-root rule before anything opens
them, the same refusal for a file that exists and one that does not; mean files are read bounded."""
import os

import pytest

from digitslite.caffe.caffemodel import MAX_BLOB_FILE_BYTES
from digitslite.datasets.mean import read_mean_file
from digitslite.errors import UserError
from digitslite.networks import get_network
from tests.hostile.conftest import dataset_body, job_folders


@pytest.fixture
def dataset_id(client, demo) -> str:
    response = client.post("/api/v1/datasets", json=dataset_body(demo))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["jobs"][0]["id"]


def _net_with_mean_file(path: str) -> str:
    text = get_network("fcn_tiny").network_file.read_text()
    mean = f'  transform_param {{ mean_file: "{path}" }}\n'
    return text.replace("  include { phase: TRAIN }\n  data_param {",
                        f"  include {{ phase: TRAIN }}\n{mean}  data_param {{", 1)


@pytest.mark.parametrize("path", ["/dev/zero", "/etc/shadow", "/nonexistent/mean.binaryproto",
                                  "../../../../etc/passwd"])
def test_a_mean_file_outside_the_data_roots_is_refused_alike_whether_it_exists(client, dataset_id, tmp_path,
                                                                               path):
    before = job_folders(tmp_path / "jobs")
    response = client.post("/api/v1/models", json={"dataset": dataset_id, "max_iter": 1,
                                                   "network_prototxt": _net_with_mean_file(path)})
    assert response.status_code == 403, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["field"] == "network_prototxt"
    assert "layer 'data' transform_param.mean_file" in error["message"]
    assert job_folders(tmp_path / "jobs") == before


def test_a_mean_file_inside_the_data_roots_is_accepted(client, dataset_id, data_root):
    response = client.post("/api/v1/models", json={
        "dataset": dataset_id, "max_iter": 1,
        "network_prototxt": _net_with_mean_file(str(data_root / "mean.binaryproto"))})
    assert response.status_code == 201, response.get_data(as_text=True)


def test_a_device_or_an_oversized_file_is_not_read_as_a_mean(tmp_path):
    with pytest.raises(UserError, match="not a regular file"):
        read_mean_file("/dev/zero")
    huge = tmp_path / "huge.binaryproto"
    with open(huge, "wb") as out:
        out.truncate(MAX_BLOB_FILE_BYTES + 1)  # sparse: no disk used
    with pytest.raises(UserError, match="more than the mean file may hold"):
        read_mean_file(huge)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="not a regular file"):
        read_mean_file(fifo)  # would block forever on a plain open
