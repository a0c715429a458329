"""Item 12: odd requests that used to end in 500 are 4xx answers naming the field."""
import io
import struct
import zipfile

import pytest

from tests.hostile.conftest import dataset_body


@pytest.fixture
def job_id(client, demo) -> str:
    response = client.post("/api/v1/datasets", json=dataset_body(demo))
    return response.get_json()["jobs"][0]["id"]


def _zip_with_flags(flags: int = 0, method: int | None = None) -> bytes:
    """A one-member zip whose header says encrypted (flag bit 0) or another compression method."""
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("images/a.png", b"abc")
    raw = bytearray(data.getvalue())
    for signature, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        start = raw.find(signature)
        struct.pack_into("<H", raw, start + flag_at, flags)
        if method is not None:
            struct.pack_into("<H", raw, start + method_at, method)
    return bytes(raw)


@pytest.mark.parametrize(("archive", "words"), [(_zip_with_flags(flags=1), "is encrypted"),
                                                (_zip_with_flags(method=9), "compression method 9")],
                         ids=["encrypted", "deflate64"])
def test_zips_this_server_cannot_unpack_are_refused_by_name(client, archive, words):
    response = client.post("/api/v1/datasets", data={"archive": (io.BytesIO(archive), "a.zip")},
                           content_type="multipart/form-data")
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["field"] == "archive" and words in error["message"]


def test_json_nested_far_too_deep_is_refused(client):
    body = "[" * 100_000 + "]" * 100_000
    response = client.post("/api/v1/datasets", data=body, content_type="application/json")
    assert response.status_code in (400, 422) and "nested" in response.get_json()["error"]["message"]
    deep = '{"name": ' + "[" * 40 + "]" * 40 + "}"
    response = client.post("/api/v1/datasets", data=deep, content_type="application/json")
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "name"


@pytest.mark.parametrize("name", ["job.json%00.png", "%00"])
def test_a_nul_in_a_file_route_is_not_found(client, job_id, name):
    response = client.get(f"/api/v1/jobs/{job_id}/files/{name}")
    assert response.status_code == 404 and response.get_json()["error"]["field"] == "name"


def test_a_log_offset_past_any_file_is_refused(client, job_id):
    response = client.get(f"/api/v1/jobs/{job_id}/log", query_string={"offset": 10**20})
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "offset"
    assert client.get(f"/api/v1/jobs/{job_id}/log", query_string={"offset": 2**40}).status_code == 200


@pytest.mark.parametrize("value", ["99999999999999999999", "\u00b2", "\u00b9\u00b2", "1_0", "\u0661"])
@pytest.mark.parametrize("field", ["page", "per_page"])
def test_odd_page_numbers_are_refused_by_the_api(client, job_id, field, value):
    response = client.get("/api/v1/jobs", query_string={field: value})
    assert response.status_code == 422 and response.get_json()["error"]["field"] == field


@pytest.mark.parametrize("value", ["99999999999999999999", "\u00b2", "\u00b9\u00b2"])
@pytest.mark.parametrize("field", ["page", "per_page"])
def test_odd_page_numbers_fall_back_on_the_home_page(client, job_id, field, value):
    assert client.get("/", query_string={field: value}).status_code == 200
