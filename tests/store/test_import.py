"""Importing: checksums, resumed downloads, unreachable hosts, mirrors, local copies, legacy FCN files."""
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from digitslite.caffe.caffemodel import read_weights
from digitslite.caffe.prototxt import read_net
from digitslite.errors import UserError
from digitslite.fileio import read_json, write_json_atomically
from digitslite.modelstore.client import FetchPolicy, StoreUnreachable
from digitslite.modelstore.entries import add_to_master, index_store
from digitslite.modelstore.format import ChecksumError
from digitslite.modelstore.importer import import_model, partial_import_dir
from digitslite.modelstore.listing import list_stores
from tests.store.helpers import HEIGHT, WIDTH, closed_port_url, scores, served_store, write_tiny_entry

FAST = FetchPolicy(timeout=2.0, retries=2, backoff=0.01)
DROP_AFTER = 100


@pytest.fixture
def tiny_store(tmp_path) -> Path:
    store = tmp_path / "store"
    write_tiny_entry(store / "tiny")
    add_to_master(store, "tiny")
    return store


def test_import_from_a_served_store_verifies_and_places_the_model(tiny_store, tmp_path):
    seen = []
    with served_store(tiny_store) as url:
        imported = import_model(url, "tiny", tmp_path / "model", progress=lambda *args: seen.append(args))
    assert imported.path == tmp_path / "model"
    assert sorted(path.name for path in imported.path.iterdir()) == [
        "deploy.prototxt", "info.json", "labels.txt", "weights.caffemodel"]
    assert imported.info.data["imported from"] == f"{url}/tiny"
    assert imported.weights.read_bytes() == (tiny_store / "tiny" / "weights.caffemodel").read_bytes()
    size = (tiny_store / "tiny" / "weights.caffemodel").stat().st_size
    assert ("weights.caffemodel", size, size) in seen
    assert not partial_import_dir(tmp_path / "model").exists()


def test_one_tampered_byte_fails_the_import_with_a_checksum_message(tiny_store, tmp_path):
    weights = tiny_store / "tiny" / "weights.caffemodel"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with served_store(tiny_store) as url, pytest.raises(ChecksumError) as error:
        import_model(url, "tiny", tmp_path / "model")
    assert re.search(r"weights\.caffemodel from http://127\.0\.0\.1:\d+/tiny/weights\.caffemodel: checksum "
                     r"mismatch: sha256 is [0-9a-f]{64}, info\.json expects [0-9a-f]{64}", str(error.value))
    assert not (tmp_path / "model").exists()
    assert not partial_import_dir(tmp_path / "model").exists()


# ----------------------------------------------------------------------------------------------
# a server that breaks off


class _DroppingHandler(BaseHTTPRequestHandler):
    """Serves server.files; while server.drops > 0 a weights request stops after DROP_AFTER bytes,
    and after that, while server.unavailable, weights requests get 503."""

    def do_GET(self) -> None:
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        body = server.files.get(self.path)
        weights = self.path.endswith(".caffemodel")
        if body is None or (weights and server.drops == 0 and server.unavailable):
            self.send_error(404 if body is None else 503)
            return
        asked = self.headers.get("Range")
        start = int(asked.removeprefix("bytes=").rstrip("-")) if asked else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if weights and server.drops > 0:
            server.drops -= 1
            self.wfile.write(body[start:start + DROP_AFTER])
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body[start:])

    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture
def dropping_server(tiny_store):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DroppingHandler)
    server.files = {f"/{path.relative_to(tiny_store).as_posix()}": path.read_bytes()
                    for path in tiny_store.rglob("*") if path.is_file()}
    server.requests, server.drops, server.unavailable = [], 0, False
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _weights_requests(server) -> list:
    return [range_header for path, range_header in server.requests if path.endswith(".caffemodel")]


def test_a_dropped_connection_is_resumed_with_a_range_request(dropping_server, tmp_path):
    dropping_server.drops = 1
    url = f"http://127.0.0.1:{dropping_server.server_address[1]}"
    imported = import_model(url, "tiny", tmp_path / "model", policy=FAST)
    assert _weights_requests(dropping_server) == [None, f"bytes={DROP_AFTER}-"]
    assert imported.weights.read_bytes() == dropping_server.files["/tiny/weights.caffemodel"]


def test_a_failed_download_is_kept_and_the_next_import_resumes_it(dropping_server, tmp_path):
    dropping_server.drops, dropping_server.unavailable = 1, True
    url = f"http://127.0.0.1:{dropping_server.server_address[1]}"
    with pytest.raises(StoreUnreachable, match=r"failed 3 times in a row .*running the import again resumes"):
        import_model(url, "tiny", tmp_path / "model", policy=FAST)
    assert len(_weights_requests(dropping_server)) == 1 + 3
    partial = partial_import_dir(tmp_path / "model") / "weights.caffemodel.part"
    assert partial.stat().st_size == DROP_AFTER
    assert not (tmp_path / "model").exists()

    dropping_server.unavailable, dropping_server.requests = False, []
    imported = import_model(url, "tiny", tmp_path / "model", policy=FAST)
    assert _weights_requests(dropping_server) == [f"bytes={DROP_AFTER}-"]
    assert imported.weights.read_bytes() == dropping_server.files["/tiny/weights.caffemodel"]


# ----------------------------------------------------------------------------------------------
# unreachable hosts, mirrors and local copies


def test_an_unreachable_store_is_listed_as_such(tiny_store):
    dead = closed_port_url()
    started = time.monotonic()
    listings = list_stores([dead, str(tiny_store)])
    assert time.monotonic() - started < 5
    assert [(listing.url, listing.reachable) for listing in listings] == [
        (dead, False), (str(tiny_store), True)]
    assert "cannot reach" in listings[0].error and "DIGITSLITE_STORE_URLS" in listings[0].error
    assert [model.id for model in listings[1].models] == ["tiny"]


def test_an_unreachable_store_fails_the_import_at_once(tmp_path):
    started = time.monotonic()
    with pytest.raises(StoreUnreachable, match="DIGITSLITE_STORE_URLS"):
        import_model(closed_port_url(), "tiny", tmp_path / "model")
    assert time.monotonic() - started < 5


def test_a_silent_host_times_out(tmp_path):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)   # accepts connections (backlog) but never answers
        started = time.monotonic()
        with pytest.raises(StoreUnreachable, match="timed out"):
            import_model(f"http://127.0.0.1:{silent.getsockname()[1]}", "tiny", tmp_path / "model",
                         policy=FetchPolicy(timeout=0.5))
        assert time.monotonic() - started < 5


def _remote_weights_store(tiny_store: Path, weights_url: str) -> Path:
    """The tiny entry with its weights moved off the store to `weights_url` (as the public FCN weights)."""
    entry = tiny_store / "tiny"
    info = read_json(entry / "info.json")
    info["files"]["weights.caffemodel"]["url"] = weights_url
    write_json_atomically(entry / "info.json", info)
    return entry / "weights.caffemodel"


def test_unreachable_weights_name_the_mirror_and_the_local_file_and_a_local_copy_works(tiny_store, tmp_path):
    weights = _remote_weights_store(tiny_store, closed_port_url() + "/weights.caffemodel")
    local_copy = tmp_path / "my-weights.caffemodel"
    weights.rename(local_copy)
    with pytest.raises(StoreUnreachable) as error:
        import_model(str(tiny_store), "tiny", tmp_path / "model")
    for hint in ("cannot download http://127.0.0.1:", "beside info.json", "DIGITSLITE_STORE_URLS",
                 "--weights-file LOCAL"):
        assert hint in str(error.value)
    assert not partial_import_dir(tmp_path / "model").exists(), "nothing was received, so nothing is kept"

    imported = import_model(str(tiny_store), "tiny", tmp_path / "model",
                            local_files={"snapshot file": local_copy})
    assert imported.weights.read_bytes() == local_copy.read_bytes()


def test_a_local_copy_is_verified_too(tiny_store, tmp_path):
    _remote_weights_store(tiny_store, closed_port_url() + "/weights.caffemodel")
    wrong = tmp_path / "wrong.caffemodel"
    wrong.write_bytes(b"not the weights")
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        import_model(str(tiny_store), "tiny", tmp_path / "model", local_files={"snapshot file": wrong})
    with pytest.raises(UserError, match=r"a local file is given for 'nothing\.bin', which"):
        import_model(str(tiny_store), "tiny", tmp_path / "model", local_files={"nothing.bin": wrong})


def test_a_mirror_with_the_weights_beside_info_json_serves_them(tiny_store, tmp_path):
    _remote_weights_store(tiny_store, closed_port_url() + "/weights.caffemodel")
    with served_store(tiny_store) as url:
        imported = import_model(url, "tiny", tmp_path / "model")
    assert imported.weights.read_bytes() == (tiny_store / "tiny" / "weights.caffemodel").read_bytes()


def test_an_existing_destination_is_refused(tiny_store, tmp_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(UserError, match="already exists; choose another destination"):
        import_model(str(tiny_store), "tiny", tmp_path / "model")


# ----------------------------------------------------------------------------------------------
# fcn.berkeleyvision.org files


def test_a_legacy_fcn8s_deploy_imports_with_derived_crop_offsets(peer, tmp_path):
    text = peer("fcn__voc-fcn8s__deploy.prototxt").read_text()
    legacy = re.sub(r"\boffset:\s*\d+", "", text)
    assert "offset" not in legacy
    store = tmp_path / "store"
    (store / "voc-fcn8s-legacy").mkdir(parents=True)
    (store / "voc-fcn8s-legacy" / "deploy.prototxt").write_text(legacy)
    (store / "voc-fcn8s-legacy" / "info.json").write_text(
        '{"name": "FCN-8s, 2015 model-zoo deploy", "framework": "caffe", "deploy file": "deploy.prototxt"}')
    index_store(store)

    imported = import_model(str(store), "voc-fcn8s-legacy", tmp_path / "model")

    crops = [(layer.name, list(layer.crop_param.offset)) for layer in read_net(imported.deploy).layer
             if layer.type == "Crop"]
    assert crops == [("score_pool4c", [5]), ("score_pool3c", [9]), ("score", [31])]
    assert imported.conversions == [
        "deploy.prototxt: Crop layer 'score_pool4c': offset 5 derived (none was written)",
        "deploy.prototxt: Crop layer 'score_pool3c': offset 9 derived (none was written)",
        "deploy.prototxt: Crop layer 'score': offset 31 derived (none was written)"]
    assert imported.weights is None
    assert imported.info.files["deploy.prototxt"].size == imported.deploy.stat().st_size


def test_ungrouped_diagonal_upscores_become_grouped_with_equal_predictions(tmp_path):
    store = tmp_path / "store"
    write_tiny_entry(store / "fcn-repo-style", grouped=False)
    image = np.random.default_rng(0).uniform(0, 255, (1, 3, HEIGHT, WIDTH)).astype(np.float32)
    entry = store / "fcn-repo-style"
    before = scores(entry / "deploy.prototxt", entry / "weights.caffemodel", image)

    imported = import_model(str(store), "fcn-repo-style", tmp_path / "model", group_upscores=True)

    upscore = next(layer for layer in read_net(imported.deploy).layer if layer.name == "upscore")
    assert upscore.convolution_param.group == 3
    assert read_weights(imported.weights)["upscore"][0].shape == (3, 1, 4, 4)
    assert imported.conversions == [
        "Deconvolution 'upscore': diagonal weights made grouped (DIGITS' topology)"]
    # the same sums, without the zero off-diagonal terms: equal up to float32 rounding
    np.testing.assert_allclose(scores(imported.deploy, imported.weights, image), before, rtol=1e-5, atol=1e-3)
