"""`digitslite store serve`: static files with Content-Length and byte ranges, on a real loopback port.

It is the job server's own /store/ tree (server.store.tree), serving another folder at the root."""
import urllib.error
import urllib.request

import pytest

from tests.store.helpers import served_store

PAYLOAD = bytes(range(256)) * 40  # 10240 bytes


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
    (folder / ".importing").mkdir()
    (folder / ".importing" / "info.json").write_text("{}")
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


@pytest.mark.parametrize(("header", "first", "last"), [
    ("bytes=0-9", 0, 9),
    ("bytes=100-", 100, 10239),
    ("bytes=-16", 10224, 10239),
    ("bytes=10000-99999", 10000, 10239),
])
def test_single_ranges(store_url, header, first, last):
    status, headers, body = _get(f"{store_url}/entry/weights.caffemodel", header)
    assert (status, headers["Content-Range"]) == (206, f"bytes {first}-{last}/{len(PAYLOAD)}")
    assert body == PAYLOAD[first:last + 1]


def test_an_inverted_range_is_416(store_url):
    with pytest.raises(urllib.error.HTTPError) as error:
        _get(f"{store_url}/entry/weights.caffemodel", "bytes=20-10")
    assert error.value.code == 416


def test_hidden_files_are_never_served(store_url):
    """A folder being written (an import or a publish in progress) is hidden by its leading dot."""
    with pytest.raises(urllib.error.HTTPError) as error:
        _get(f"{store_url}/.importing/info.json")
    assert error.value.code == 404
