"""Item 2: a dataset request cannot make the server's or a worker's memory grow without bound: resize
targets and source images are bounded before any pixel is decoded, and encoder processes have a heap
limit."""
import struct
import subprocess
import sys
import zlib

import pytest

from digitslite.datasets import DatasetOptions, check_dataset
from digitslite.datasets.options import MAX_PIXELS, resolve_options
from digitslite.errors import UserError
from tests.hostile.conftest import dataset_body, job_folders
from tests.server.harness import wait_for


@pytest.mark.parametrize(("width", "height", "field"), [(100000, 100000, "width"), (8000, 8000, "height")])
def test_a_huge_resize_target_is_refused_in_the_request(client, demo, tmp_path, width, height, field):
    response = client.post("/api/v1/datasets", json=dataset_body(demo, resize="squash", width=width,
                                                                 height=height))
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["error"]["field"] == field
    assert job_folders(tmp_path / "jobs") == []


def test_a_huge_resize_target_is_refused_by_the_options(demo):
    options = DatasetOptions(images=demo / "images", labels=demo / "labels", resize="squash", width=100000,
                             height=100000)
    with pytest.raises(UserError, match="--width 100000 is larger than"):
        resolve_options(options)


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height; Pillow knows the size before decoding anything."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def test_an_image_whose_header_claims_too_many_pixels_is_reported_without_decoding(demo):
    first = sorted((demo / "images").iterdir())[0]
    first.write_bytes(_png_header(5000, 5000))  # under Pillow's own bomb limit
    report = check_dataset(DatasetOptions(images=demo / "images", labels=demo / "labels", workers=1))
    problems = [problem for problem in report.to_dict()["problems"] if problem["kind"] == "unreadable"]
    assert problems and f"more than {MAX_PIXELS} pixels" in str(problems[0])


def test_an_encoder_process_cannot_grow_past_its_heap_limit():
    code = ("from digitslite.datasets.encoder import bound_memory\n"
            "bound_memory()\n"
            "import numpy\n"
            "try:\n"
            "    numpy.ones(6 << 30, dtype=numpy.uint8)\n"
            "except MemoryError:\n"
            "    print('refused')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "refused", out.stderr


def test_an_encoder_process_whose_parent_is_gone_ends_without_a_traceback():
    """Item 15: a write into a pipe nobody reads ends the process quietly (no BrokenPipeError)."""
    code = ("import os\n"
            "from digitslite.datasets.encoder import end_quietly_on_broken_pipe\n"
            "end_quietly_on_broken_pipe()\n"
            "read, write = os.pipe()\n"
            "os.close(read)\n"
            "os.write(write, b'result')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == -13 and out.stderr == ""  # SIGPIPE


def test_the_dataset_request_decodes_no_pixel(client, demo, tmp_path, monkeypatch):
    """Item 2: the request only reads fields and resolves paths; the check is the job's first phase,
    which runs in a worker process. Scanning in this (the server's) process fails the test."""
    def scan_in_the_server(*args, **kwargs):
        raise AssertionError("the dataset request scanned the folders in the server process")
    monkeypatch.setattr("digitslite.datasets.create.scan", scan_in_the_server)
    monkeypatch.setattr("digitslite.datasets.create.make_plan", scan_in_the_server)
    response = client.post("/api/v1/datasets", json=dataset_body(demo))
    assert response.status_code == 201, response.get_data(as_text=True)
    [job] = response.get_json()["jobs"]
    assert job["status"] == "queued" and job_folders(tmp_path / "jobs") == [job["id"]]


def test_the_form_check_decodes_no_pixel_in_the_request(client, demo, monkeypatch):
    """Item 2: the form's Check runs in a process of its own that the page polls; scanning in this
    (the server's) process fails the test, and the check still reports."""
    def scan_in_the_server(*args, **kwargs):
        raise AssertionError("the Check scanned the folders in the server process")
    monkeypatch.setattr("digitslite.datasets.scan.scan", scan_in_the_server)
    monkeypatch.setattr("digitslite.server.pages.dataset_preview.scan", scan_in_the_server)
    fields = {"images": str(demo / "images"), "labels": str(demo / "labels"), "val_percent": "25"}
    started = client.post("/pages-api/dataset-check", data=fields)
    assert started.status_code == 202, started.get_data(as_text=True)
    poll = started.get_json()["poll"]
    result = wait_for(lambda: (answer := client.get(poll)).status_code != 202 and answer, 60, "the check")
    assert result.status_code == 200 and result.get_json()["report"]["counts"] == {"train": 3, "val": 1}
