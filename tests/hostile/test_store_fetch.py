"""Items 14 and 8 (stores): a server's import fetches a file's url only from the store's own host or
configured hosts, and a folder store's file may not link outside its entry."""
import json
import shutil
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import pytest

from digitslite.errors import UserError
from digitslite.jobs.runners.pretrained import server_fetch_policy
from digitslite.store.importer import import_model
from tests.store.helpers import write_tiny_entry


@pytest.fixture
def loopback_service():
    """A loopback HTTP service of the test's own that counts the requests it gets."""
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"secret")

        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()
    thread.join()


def _entry_fetching_from(tmp_path, url: str):
    store = tmp_path / "store"
    entry = write_tiny_entry(store / "tiny")
    (entry / "weights.caffemodel").unlink()
    info = json.loads((entry / "info.json").read_text())
    info["files"]["weights.caffemodel"]["url"] = url
    (entry / "info.json").write_text(json.dumps(info))
    return store


def test_a_server_import_does_not_fetch_another_host(tmp_path, loopback_service, monkeypatch):
    host, hits = loopback_service
    store = _entry_fetching_from(tmp_path, f"http://{host}/admin/weights.caffemodel")
    monkeypatch.delenv("DIGITSLITE_STORE_FETCH_HOSTS", raising=False)
    with pytest.raises(UserError, match="fetches only from the store's own host"):
        import_model(str(store), "tiny", tmp_path / "out", policy=server_fetch_policy())
    assert hits == [] and not (tmp_path / "out").exists()
    monkeypatch.setenv("DIGITSLITE_STORE_FETCH_HOSTS", host)
    with pytest.raises(UserError, match="checksum"):  # fetched now, and its content is checked
        import_model(str(store), "tiny", tmp_path / "out", policy=server_fetch_policy())
    assert hits == ["/admin/weights.caffemodel"]


def test_a_folder_store_file_linking_outside_its_entry_is_refused(tmp_path):
    store = tmp_path / "store"
    entry = write_tiny_entry(store / "tiny")
    outside = tmp_path / "elsewhere.caffemodel"
    shutil.move(entry / "weights.caffemodel", outside)
    (entry / "weights.caffemodel").symlink_to(outside)
    with pytest.raises(UserError, match="outside the store entry"):
        import_model(str(store), "tiny", tmp_path / "out")
