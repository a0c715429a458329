"""Item 15: a request thread's SQLite connection is closed when its request ends, not whenever the
garbage collector gets to it, so many request threads do not pile up open descriptors."""
import gc
import os
import threading


def _index_descriptors(jobs_dir) -> int:
    index = str(jobs_dir / "index.sqlite")
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(index)
        except OSError:
            continue
    return count


def _request_in_a_thread(app) -> object:
    kept = []

    def request() -> None:
        app.test_client().get("/api/v1/jobs")
        kept.append(app.extensions["digitslite"].index._local.__dict__.get("conn"))
    thread = threading.Thread(target=request)
    thread.start()
    thread.join()
    return kept[0]


def test_request_threads_leave_no_open_index_connections(app, tmp_path):
    gc.disable()
    try:
        assert _request_in_a_thread(app) is None  # closed and dropped at the end of the request
        # SQLite may keep one closed descriptor of a file another connection locks, to reuse it.
        settled = _index_descriptors(tmp_path / "jobs")
        for _ in range(20):
            _request_in_a_thread(app)
        assert _index_descriptors(tmp_path / "jobs") == settled
    finally:
        gc.enable()
