"""An error nobody expected: logged with its traceback, a 500 that gives nothing away, as JSON for
API clients and as the error page for browsers; a full disk still says so."""
import errno
import logging

import pytest

BUG = RuntimeError("secret detail of the bug")


@pytest.fixture
def broken_index(app, monkeypatch):
    index = app.extensions["digitslite"].index

    def broken(*args, **kwargs):
        raise BUG
    monkeypatch.setattr(index, "count_by_kind", broken)
    monkeypatch.setattr(index, "list", broken)


def test_an_api_client_gets_a_json_500_and_the_log_the_traceback(client, broken_index, caplog):
    with caplog.at_level(logging.ERROR):
        response = client.get("/api/v1/jobs")
    assert response.status_code == 500
    assert response.get_json()["error"]["message"] == "internal server error; the server log has the details"
    assert "secret detail" not in response.get_data(as_text=True)
    assert "unhandled error in GET /api/v1/jobs" in caplog.text and "secret detail of the bug" in caplog.text


def test_a_browser_gets_the_error_page(client, broken_index):
    response = client.get("/", headers={"Accept": "text/html"})
    assert response.status_code == 500 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "The server hit an error it did not expect." in page and "secret detail" not in page


def test_a_full_disk_is_a_507_for_a_browser_too(app, client, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(app.extensions["digitslite"].index, "count_by_kind", full)
    response = client.get("/", headers={"Accept": "text/html"})
    assert response.status_code == 507
