"""Faults against real servers on loopback: server kills at random moments while dataset (from
folders and from an uploaded zip) and model jobs are created, worker kills during dataset creation,
and a full small filesystem.

At the end, with every job finished and no server running, it counts what must be zero: job
folders that cannot be read, index rows that disagree with their folders, processes the run
started that are still alive, and partial folders left behind. The full-filesystem part needs
root (it mounts a small tmpfs) and is skipped otherwise.

    .venv/bin/python benchmarks/faults.py --server-kills 20 --worker-kills 3
"""
import argparse
import contextlib
import io
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from digitslite.datasets.demo import write_demo
from digitslite.jobs.folder import JobFolder, is_job_folder_name
from digitslite.jobs.index import JobFilter, JobIndex

MARK = "DIGITSLITE_FAULTS_RUN"
TERMINAL = {"done", "failed", "aborted", "interrupted"}
SERVING = re.compile(r"serving http://127\.0\.0\.1:(\d+)")
# A round's requests take well under a second since dataset requests only queue; a kill within this
# lands before, during or after them. (Clients that created jobs until the kill made ~50 a round,
# more than the settling server can run in its wait.)
KILL_WITHIN_S = 1.0
SERVERS: list = []  # every server started, so that a run that fails midway stops them


class Server:
    """`digitslite serve` on a free loopback port, its output in a file."""

    def __init__(self, jobs_dir: Path, data: Path, mark: str):
        self.log = jobs_dir.parent / f"server-{secrets.token_hex(3)}.log"
        env = {**os.environ, MARK: mark, "DIGITSLITE_GPUS": "none", "DIGITSLITE_CPU_SLOTS": "2",
               "DIGITSLITE_ABORT_GRACE_S": "5"}
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "digitslite", "serve", "--port", "0", "--quiet", "--jobs-dir",
                 str(jobs_dir), "--data-root", str(data)], stdout=out, stderr=subprocess.STDOUT, env=env)
        SERVERS.append(self)
        deadline = time.monotonic() + 60
        while not (match := SERVING.search(self.log.read_text(errors="replace"))):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start:\n{self.log.read_text(errors='replace')}")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{match.group(1)}/api/v1"

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        return self._send(method, path, data, {"Content-Type": "application/json"} if data else {})

    def upload(self, path: str, fields: dict[str, str], archive: bytes) -> tuple[int, Any]:
        """A multipart POST of `fields` and `archive` (as the field `archive`)."""
        boundary = secrets.token_hex(8)
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
                 for name, value in fields.items()]
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="archive"; filename="demo.zip"'
                     f'\r\nContent-Type: application/zip\r\n\r\n'.encode() + archive + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self._send("POST", path, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def _send(self, method: str, path: str, data: bytes | None, headers: dict[str, str]) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def wait(self, job_id: str, statuses: set[str], timeout: float = 600) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status, job = self.call("GET", f"/jobs/{job_id}")
            if status == 200 and job["status"] in statuses:
                return job
            if time.monotonic() > deadline:
                raise SystemExit(f"job {job_id} did not become {statuses}: {job}")
            time.sleep(0.1)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def dataset_body(demo: Path, name: str) -> dict[str, Any]:
    return {"name": name, "images": str(demo / "images"), "labels": str(demo / "labels"), "val_percent": 25}


def model_body(dataset_id: str, name: str) -> dict[str, Any]:
    return {"name": name, "dataset": dataset_id, "network": "fcn_tiny", "batch_size": 2, "max_iter": 20,
            "snapshot_interval": 10, "test_interval": 20, "seed": 1}


def demo_zip(demo: Path) -> bytes:
    """The demo's images and labels as an upload."""
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for folder in ("images", "labels"):
            for path in sorted((demo / folder).iterdir()):
                archive.write(path, f"{folder}/{path.name}")
    return data.getvalue()


def server_kills(jobs_dir: Path, data: Path, demo: Path, mark: str, count: int, rng: random.Random) -> int:
    """`count` servers, each SIGKILLed at a random moment while jobs are being created."""
    archive = demo_zip(demo)
    server = Server(jobs_dir, data, mark)
    _, created = server.call("POST", "/datasets", dataset_body(demo, "base"))
    base = created["jobs"][0]["id"]
    server.wait(base, {"done"})
    server.kill()
    for round_number in range(count):
        server = Server(jobs_dir, data, mark)

        def create(server: Server = server, tag: int = round_number) -> None:
            """Create a dataset from folders, one from a zip and a model, unless the server goes first."""
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                server.call("POST", "/datasets", dataset_body(demo, f"d{tag}"))
                server.upload("/datasets", {"name": f"u{tag}", "val_percent": "25"}, archive)
                server.call("POST", "/models", model_body(base, f"m{tag}"))
        threads = [threading.Thread(target=create, daemon=True) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(0.0, KILL_WITHIN_S))  # the fault's moment is the point: random on purpose
        server.kill()
        for thread in threads:
            thread.join(timeout=60)
    return count


def worker_kills(jobs_dir: Path, data: Path, demo: Path, mark: str, count: int) -> int:
    """Dataset jobs whose worker is SIGKILLed mid-creation, then resumed to the end."""
    server = Server(jobs_dir, data, mark)
    resumed = 0
    for number in range(count):
        _, created = server.call("POST", "/datasets", {**dataset_body(demo, f"k{number}"), "check": False})
        job_id = created["jobs"][0]["id"]
        job = server.wait(job_id, {"running", *TERMINAL})
        deadline = time.monotonic() + 60
        while job["status"] == "running" and job["progress"] <= 0 and time.monotonic() < deadline:
            time.sleep(0.05)
            job = server.call("GET", f"/jobs/{job_id}")[1]
        if job["status"] == "running" and job["run"]["pid"]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job["run"]["pid"], signal.SIGKILL)
            server.wait(job_id, {"interrupted", "failed"})
            server.call("POST", f"/jobs/{job_id}/resume")
            resumed += 1
        server.wait(job_id, {"done"})
    server.stop()
    return resumed


def full_disk(data: Path, demo: Path, mark: str, root: Path) -> dict[str, Any] | None:
    """A jobs directory on a 24 MiB tmpfs filled by dataset jobs: every refusal must say "disk full",
    and reading and deleting must keep working so that space can be freed through the API."""
    mount = root / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        return None
    outcome = {"jobs": 0, "disk full messages": 0, "other errors": 0, "reads ok": 0, "deletes ok": 0}
    try:
        jobs_dir = mount / "jobs"
        server = Server(jobs_dir, data, mark)
        created = []
        for number in range(40):
            request = {**dataset_body(demo, f"f{number}"), "check": False}
            status, body = server.call("POST", "/datasets", request)
            if status == 201:
                created.append(body["jobs"][0]["id"])
                job = server.wait(created[-1], TERMINAL)
                if job["status"] != "done":
                    full = "disk full" in (job["error"] or {}).get("message", "")
                    outcome["disk full messages" if full else "other errors"] += 1
            else:
                full = "disk full" in body["error"]["message"]
                outcome["disk full messages" if full else "other errors"] += 1
            if outcome["disk full messages"] >= 3:
                break
        outcome["jobs"] = len(created)
        for job_id in created:
            outcome["reads ok"] += server.call("GET", f"/jobs/{job_id}")[0] == 200
        for job_id in created:
            outcome["deletes ok"] += server.call("DELETE", f"/jobs/{job_id}?force=true")[0] == 204
        status, body = server.call("POST", "/datasets", {**dataset_body(demo, "after"), "check": False})
        outcome["a job after freeing space"] = status == 201 and server.wait(body["jobs"][0]["id"],
                                                                            TERMINAL)["status"] == "done"
        server.stop()
        outcome.update(check(jobs_dir, mark))
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
    return outcome


def settle(jobs_dir: Path, data: Path, mark: str) -> None:
    """One last server: every job the kills left running or queued is run to its end."""
    server = Server(jobs_dir, data, mark)
    for row in all_rows(jobs_dir):
        server.wait(row["id"], TERMINAL)
    server.stop()


def all_rows(jobs_dir: Path) -> list[dict[str, Any]]:
    index = JobIndex(jobs_dir / "index.sqlite")
    rows, page = [], 1
    while batch := index.list(JobFilter(), page=page, per_page=500)[0]:
        rows += batch
        page += 1
    index.close()
    return rows


def marked_processes(mark: str) -> dict[int, str]:
    """The live processes this run started (servers, workers and their helpers), by pid."""
    wanted = f"{MARK}={mark}".encode() + b"\0"
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError, IndexError):
            if (entry / "stat").read_text().rsplit(") ", 1)[1][0] in "ZX":
                continue
            if (b"\0" + (entry / "environ").read_bytes()).find(b"\0" + wanted) >= 0:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace")
    return found


def stop_everything(mark: str) -> None:
    """After a failed run: no server or worker of it may outlive it."""
    for server in SERVERS:
        if server.process.poll() is None:
            server.kill()
    for pid in marked_processes(mark):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def check(jobs_dir: Path, mark: str) -> dict[str, int]:
    """The four counts that must be zero, read with no server running."""
    rows = {row["id"]: row for row in all_rows(jobs_dir)}
    folders = [entry for entry in jobs_dir.iterdir() if entry.is_dir() and is_job_folder_name(entry.name)]
    unreadable, mismatches = 0, len(rows.keys() - {folder.name for folder in folders})
    for path in folders:
        try:
            state = JobFolder(path).state()
            JobFolder(path).spec()
        except (OSError, ValueError, TypeError, KeyError):
            unreadable += 1
            continue
        row = rows.get(path.name)
        mismatches += row is None or row["status"] != str(state.status)
    partial = [path for path in jobs_dir.rglob("*") if ".partial-" in path.name or
               path.name.startswith((".new-", ".trash-"))]
    return {"job folders": len(folders), "unreadable folders": unreadable, "index mismatches": mismatches,
            "orphan processes": len(marked_processes(mark)), "leftover partial folders": len(partial)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-kills", type=int, default=20)
    parser.add_argument("--worker-kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    mark = secrets.token_hex(6)
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        data = root / "data"
        write_demo(data / "demo", count=48, val_count=0, width=96, height=64, seed=0)
        demo = data / "demo"
        jobs_dir = root / "jobs"
        started = time.monotonic()
        try:
            server_kills(jobs_dir, data, demo, mark, args.server_kills, rng)
            resumed = worker_kills(jobs_dir, data, demo, mark, args.worker_kills)
            settle(jobs_dir, data, mark)
        except BaseException:
            stop_everything(mark)
            raise
        counts = check(jobs_dir, mark)
        print(f"server kills during creation: {args.server_kills}, worker kills during dataset creation: "
              f"{resumed}, {time.monotonic() - started:.0f} s")
        for name, value in counts.items():
            print(f"  {name}: {value}")
        disk = full_disk(data, demo, mark, root)
        if disk is None:
            print("full filesystem: skipped (mounting a tmpfs needs root)")
        else:
            print("full filesystem (24 MiB tmpfs):")
            for name, value in disk.items():
                print(f"  {name}: {value}")


if __name__ == "__main__":
    main()
