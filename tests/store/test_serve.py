"""`digitslite store serve`: static files with Content-Length and byte ranges, on a real loopback port."""
import urllib.error
import urllib.request

import pytest

from digitslite.store.server import byte_range
from tests.store.helpers import served_store

PAYLOAD = bytes(range(256)) * 40  # 10240 bytes


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-9", (0, 9)),
    ("bytes=100-", (100, 10239)),
    ("bytes=-16", (10224, 10239)),
    ("bytes=10000-99999", (10000, 10239)),
    ("bytes=10240-", None),
    ("bytes=20-10", None),
    ("bytes=0-1,5-6", (0, 10239)),   # several ranges: the whole file
])
def test_byte_range(header, expected):
    assert byte_range(header, len(PAYLOAD)) == expected


def _get(url: str, range_header: str | None = None):
    request = urllib.request.Request(url, headers={"Range": range_header} if range_header else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


@pytest.fixture(scope="module")
def store_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    (folder / "entry").mkdir()
    (folder / "entry" / "weights.caffemodel").write_bytes(PAYLOAD)
    (folder / "master.json").write_text('{"msg": "hi", "children": ["entry"]}')
    with served_store(folder) as url:
        yield url


def test_whole_file_has_its_length(store_url):
    status, headers, body = _get(f"{store_url}/entry/weights.caffemodel")
    assert (status, int(headers["Content-Length"]), body) == (200, len(PAYLOAD), PAYLOAD)


def test_a_range_is_answered_206_with_content_range(store_url):
    status, headers, body = _get(f"{store_url}/entry/weights.caffemodel", "bytes=1000-")
    assert status == 206
    assert headers["Content-Range"] == f"bytes 1000-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"
    assert int(headers["Content-Length"]) == len(body) == len(PAYLOAD) - 1000
    assert body == PAYLOAD[1000:]
    assert _get(f"{store_url}/entry/weights.caffemodel", "bytes=5-9")[2] == PAYLOAD[5:10]


def test_a_range_past_the_end_is_416(store_url):
    with pytest.raises(urllib.error.HTTPError) as error:
        _get(f"{store_url}/entry/weights.caffemodel", f"bytes={len(PAYLOAD)}-")
    assert error.value.code == 416
    assert error.value.headers["Content-Range"] == f"bytes */{len(PAYLOAD)}"


def test_paths_cannot_leave_the_store(store_url):
    with pytest.raises(urllib.error.HTTPError) as error:
        _get(f"{store_url}/../../etc/passwd")
    assert error.value.code == 404
