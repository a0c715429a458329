"""Real servers for tests: `digitslite serve` in a subprocess on a free loopback port, an HTTP client,
and waiting on conditions with a deadline (never a fixed sleep)."""
import contextlib
import http.client
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from digitslite.datasets.demo import write_demo

SERVING = re.compile(r"serving http://127\.0\.0\.1:(\d+)")
TERMINAL = {"done", "failed", "aborted", "interrupted"}
# Every server started in this process, so that the end of each test stops those still running.
_STARTED: list["Server"] = []


def wait_for(condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition",
             interval: float = 0.05) -> Any:
    """Poll `condition` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Client:
    """HTTP/1.1 over one connection per request; keeps cookies and an optional bearer token."""

    base: str
    token: str | None = None
    cookies: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, *, body: bytes | None = None, content_type: str | None = None,
                headers: dict[str, str] | None = None, timeout: float = 60.0) -> Response:
        host, port = self.base.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
        sent = dict(self.headers)
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{key}={value}" for key, value in self.cookies.items())
        if content_type:
            sent["Content-Type"] = content_type
        sent.update(headers or {})
        try:
            connection.request(method, path, body=body, headers=sent)
            reply = connection.getresponse()
            data = reply.read()
            for header, value in reply.getheaders():
                if header.lower() == "set-cookie":
                    name, _, rest = value.partition("=")
                    self.cookies[name] = rest.split(";", 1)[0]
            return Response(reply.status, {key.lower(): value for key, value in reply.getheaders()}, data)
        finally:
            connection.close()

    def get(self, path: str, **params: Any) -> Response:
        query = f"?{urlencode(params)}" if params else ""
        return self.request("GET", path + query)

    def post(self, path: str, payload: Any = None, **kwargs: Any) -> Response:
        body = None if payload is None else json.dumps(payload).encode()
        content_type = "application/json" if body else None
        return self.request("POST", path, body=body, content_type=content_type, **kwargs)

    def delete(self, path: str, **params: Any) -> Response:
        query = f"?{urlencode(params)}" if params else ""
        return self.request("DELETE", path + query)

    def post_form(self, path: str, fields: dict[str, str], files: list[tuple[str, str, bytes]] = (),
                  **kwargs: Any) -> Response:
        """multipart/form-data with text fields and (field, filename, content) files."""
        boundary = secrets.token_hex(12)
        parts = []
        for name, value in fields.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
                         .encode())
        for name, filename, content in files:
            head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                    f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n')
            parts.append(head.encode() + content + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        return self.request("POST", path, body=b"".join(parts),
                            content_type=f"multipart/form-data; boundary={boundary}", **kwargs)

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.get(f"/api/v1/jobs/{job_id}")
        assert response.status == 200, response.body
        return response.json()

    def wait_status(self, job_id: str, statuses: set[str] | str = TERMINAL, timeout: float = 90.0) -> dict:
        wanted = {statuses} if isinstance(statuses, str) else statuses
        return wait_for(lambda: (job := self.job(job_id))["status"] in wanted and job,
                        timeout, f"job {job_id} to be {' or '.join(sorted(wanted))}")


class Server:
    """`digitslite serve` as a subprocess; its output goes to a file, so nothing can block on a pipe."""

    def __init__(self, jobs_dir: Path, data_roots: list[Path], *, host: str = "127.0.0.1",
                 env: dict[str, str] | None = None, args: list[str] = ()):
        self.jobs_dir, self.data_roots, self.host = jobs_dir, data_roots, host
        self.env = {**os.environ, "DIGITSLITE_GPUS": "none", "DIGITSLITE_CPU_SLOTS": "2",
                    "DIGITSLITE_ABORT_GRACE_S": "5", **(env or {})}
        self.args = list(args)
        self.process: subprocess.Popen | None = None
        self.log_path = jobs_dir.parent / f"server-{secrets.token_hex(3)}.log"
        self.url = ""

    def command(self) -> list[str]:
        roots = [arg for root in self.data_roots for arg in ("--data-root", str(root))]
        return [sys.executable, "-m", "digitslite", "serve", "--host", self.host, "--port", "0", "--quiet",
                "--jobs-dir", str(self.jobs_dir), *roots, *self.args]

    def start(self) -> "Server":
        self.log_path = self.jobs_dir.parent / f"server-{secrets.token_hex(3)}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            env=self.env)
        _STARTED.append(self)
        match = wait_for(self._serving, 30, "the server to listen")
        self.url = f"http://127.0.0.1:{match.group(1)}"
        return self

    def _serving(self):
        if self.process.poll() is not None:
            raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.log()}")
        return SERVING.search(self.log())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, **kwargs: Any) -> Client:
        return Client(self.url, **kwargs)

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to tidy anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def worker_pids(jobs_dir: Path) -> list[int]:
    """Pids recorded by workers of this jobs directory that still run."""
    pids = []
    for state_file in jobs_dir.glob("*/state.json"):
        with contextlib.suppress(OSError, ValueError):
            pid = json.loads(state_file.read_text()).get("pid")
            if pid and Path(f"/proc/{pid}").exists() and str(state_file.parent) in \
                    Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                pids.append(pid)
    return pids


def kill_workers(jobs_dir: Path) -> None:
    """Tests must not leave training processes behind: SIGKILL every worker group of `jobs_dir`."""
    for pid in worker_pids(jobs_dir):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


@contextlib.contextmanager
def running_server(jobs_dir: Path, data_roots: list[Path], **kwargs: Any) -> Iterator[Server]:
    server = Server(jobs_dir, data_roots, **kwargs).start()
    try:
        yield server
    finally:
        server.kill()
        kill_workers(jobs_dir)


def servers_started() -> int:
    return len(_STARTED)


def stop_started_servers(since: int) -> None:
    """Kill every server started after the first `since` ones, and the workers of their jobs folders."""
    while len(_STARTED) > since:
        server = _STARTED.pop()
        server.kill()
        kill_workers(server.jobs_dir)


def make_demo(root: Path, count: int = 16, val_count: int = 8) -> Path:
    """Small demo images/labels (64x48) under `root`/demo, as `digitslite demo` writes them."""
    write_demo(root / "demo", count=count, val_count=val_count, width=64, height=48, seed=0)
    return root / "demo"


def dataset_request(demo: Path, **extra: Any) -> dict[str, Any]:
    return {"name": "demo", "images": str(demo / "images"), "labels": str(demo / "labels"),
            "val_images": str(demo / "val_images"), "val_labels": str(demo / "val_labels"), **extra}


def model_request(dataset_id: str, **extra: Any) -> dict[str, Any]:
    """fcn_tiny on the demo data: a few seconds of CPU training."""
    return {"name": "tiny", "dataset": dataset_id, "network": "fcn_tiny", "batch_size": 2, "max_iter": 60,
            "snapshot_interval": 20, "test_interval": 30, "seed": 7, **extra}


def created_id(response: Response) -> str:
    assert response.status in (201, 202), response.body
    return response.json()["jobs"][0]["id"]


def form_check(client: Client, fields: dict) -> Response:
    """Start the New dataset form's Check, then ask for its result until the check process has finished."""
    started = client.post_form("/pages-api/dataset-check", fields)
    if started.status != 202:
        return started
    poll = started.json()["poll"]
    return wait_for(lambda: (result := client.get(poll)).status != 202 and result, 60, "the check")
