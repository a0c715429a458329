"""Security over HTTP against a multi-user server: logins, tokens, CSRF, ownership, paths and uploads."""
import io
import os
import re
import subprocess
import sys
import zipfile

import pytest

from tests.server.harness import Client, created_id, dataset_request, make_demo, running_server

PASSWORD = "correct horse battery"


def _users(jobs_dir, *args: str, password: str | None = None) -> str:
    out = subprocess.run([sys.executable, "-m", "digitslite", "users", *args, "--jobs-dir", str(jobs_dir)],
                         input=None if password is None else password + "\n", capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("security")
    jobs_dir, data = root / "jobs", root / "data"
    demo = make_demo(data, count=4, val_count=2)
    (data / "escape").symlink_to("/etc", target_is_directory=True)
    for name, admin in (("alice", True), ("bob", False), ("carol", False)):
        _users(jobs_dir, "add", name, *(["--admin"] if admin else []), "--password-stdin", password=PASSWORD)
    tokens = {name: _users(jobs_dir, "token", name) for name in ("alice", "bob", "carol")}
    with running_server(jobs_dir, [data], env={"DIGITSLITE_MAX_UPLOAD_MB": "1"}) as server:
        yield server, tokens, demo, jobs_dir


def _refused(response, status: int) -> str:
    assert response.status == status, response.body
    assert response.headers["content-type"] == "application/json"
    return response.json()["error"]["message"]


def test_binding_beyond_loopback_needs_users_or_insecure(tmp_path):
    out = subprocess.run([sys.executable, "-m", "digitslite", "serve", "--host", "0.0.0.0", "--port", "0",
                          "--jobs-dir", str(tmp_path / "jobs")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "refusing to serve on 0.0.0.0 without users" in out.stderr and "--insecure" in out.stderr


def test_users_are_listed_without_secrets(world):
    _, _, _, jobs_dir = world
    listing = _users(jobs_dir, "list")
    assert "alice\tadmin\t1 token(s)" in listing and PASSWORD not in (jobs_dir / "users.json").read_text()
    assert oct((jobs_dir / "users.json").stat().st_mode & 0o777) == "0o600"


def test_missing_or_wrong_token_is_401(world):
    server, _, _, _ = world
    response = server.client().get("/api/v1/jobs")
    assert "log in first" in _refused(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "not valid" in _refused(server.client(token="dlt_forged").get("/api/v1/jobs"), 401)
    assert server.client().get("/api/v1/openapi.json").status == 200
    page = server.client().get("/")
    assert page.status == 302 and page.headers["location"].startswith("/login")


def _login(server, name: str) -> tuple[Client, str]:
    client = server.client()
    form = client.get("/login").body.decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    body = f"csrf_token={token}&username={name}&password={PASSWORD.replace(' ', '+')}".encode()
    response = client.request("POST", "/login", body=body, content_type="application/x-www-form-urlencoded")
    assert response.status == 302, response.body
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/").body.decode()
    return client, re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def test_session_login_and_csrf(world):
    server, _, _, _ = world
    client = server.client()
    client.get("/login")
    no_token = client.request("POST", "/login", body=f"username=alice&password={PASSWORD}".encode(),
                              content_type="application/x-www-form-urlencoded")
    assert "CSRF" in _refused(no_token, 403)
    client, csrf = _login(server, "alice")
    assert client.get("/api/v1/jobs").status == 200
    assert "CSRF" in _refused(client.post("/api/v1/jobs/x/abort"), 403)
    assert client.post("/api/v1/jobs/x/abort", headers={"X-CSRF-Token": csrf}).status == 404
    wrong = server.client()
    wrong.get("/login")
    assert wrong.request("POST", "/login", body=b"csrf_token=x&username=alice&password=nope",
                         content_type="application/x-www-form-urlencoded").status == 403


def test_cross_site_posts_are_refused(world):
    server, tokens, _, _ = world
    client = server.client(token=tokens["alice"], headers={"Origin": "http://evil.example"})
    assert "cross-site" in _refused(client.post("/api/v1/jobs/x/abort"), 403)


def test_only_the_owner_or_an_admin_may_abort_resume_delete(world):
    server, tokens, demo, _ = world
    bob = server.client(token=tokens["bob"])
    job_id = created_id(bob.post("/api/v1/datasets", dataset_request(demo)))
    carol = server.client(token=tokens["carol"])
    assert carol.job(job_id)["owner"] == "bob"  # anyone logged in may read
    for action in ("abort", "resume"):
        refused = carol.post(f"/api/v1/jobs/{job_id}/{action}")
        assert "only the job's owner (bob) or an admin" in _refused(refused, 403)
    assert "owner" in _refused(carol.delete(f"/api/v1/jobs/{job_id}"), 403)
    bob.wait_status(job_id)
    assert bob.post(f"/api/v1/jobs/{job_id}/resume").status == 409  # allowed, but the job is done
    alice = server.client(token=tokens["alice"])
    assert alice.delete(f"/api/v1/jobs/{job_id}").status == 204


def test_paths_outside_the_data_roots_are_403(world):
    server, tokens, demo, _ = world
    client = server.client(token=tokens["bob"])
    for images in ("/etc", str(demo / ".." / ".." / ".."), "escape", "demo/../../../etc"):
        request = dataset_request(demo) | {"images": images}
        assert "outside the data roots" in _refused(client.post("/api/v1/datasets", request), 403)


def test_zip_slip_uploads_are_refused(world):
    server, tokens, _, jobs_dir = world
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("images/a.png", b"x")
        zipped.writestr("../../../owned.txt", b"owned")
    response = server.client(token=tokens["bob"]).post_form("/api/v1/datasets", {"name": "slip"},
                                                             [("archive", "data.zip", archive.getvalue())])
    assert "climbs out" in _refused(response, 422)
    assert not any(path.name == "owned.txt" for path in jobs_dir.parent.rglob("owned.txt"))
    assert not [name for name in os.listdir(jobs_dir) if name.startswith(".new-")]


def test_oversized_uploads_are_413(world):
    server, tokens, _, _ = world
    response = server.client(token=tokens["bob"]).post_form(
        "/api/v1/datasets", {"name": "big"}, [("archive", "big.zip", bytes(1536 * 1024))])
    assert "larger than the server's limit of 1 MiB" in _refused(response, 413)
