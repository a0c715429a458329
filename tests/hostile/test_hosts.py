"""Item 4: DNS rebinding. A request whose Host names another site is refused before anything runs;
the names the server listens on, and those of the allow-list, are served."""
import json

from digitslite.server.app import create_app
from digitslite.server.config import ServerConfig
from digitslite.server.hosts import host_allowed
from tests.hostile.conftest import dataset_body, job_folders
from tests.server.harness import running_server


def test_a_rebound_host_is_refused_and_creates_nothing(client, demo, tmp_path):
    headers = {"Host": "evil.example:5000", "Origin": "http://evil.example:5000"}
    response = client.post("/api/v1/datasets", json=dataset_body(demo), headers=headers)
    assert response.status_code == 403 and response.get_json()["error"]["field"] == "Host"
    assert "DIGITSLITE_ALLOWED_HOSTS" in response.get_json()["error"]["message"]
    assert client.get("/", headers=headers).status_code == 403
    assert job_folders(tmp_path / "jobs") == []
    assert client.get("/api/v1/jobs", headers={"Host": "127.0.0.1:5000"}).status_code == 200
    assert client.get("/api/v1/jobs", headers={"Host": "localhost"}).status_code == 200
    assert client.get("/api/v1/jobs", headers={"Host": "[::1]:5000"}).status_code == 200


def test_the_allow_list_admits_a_name(tmp_path, data_root):
    app = create_app(ServerConfig(jobs_dir=tmp_path / "jobs", data_roots=(data_root,), gpus=[],
                                  scheduler=False, allowed_hosts=("box.lan",)))
    client = app.test_client()
    assert client.get("/api/v1/jobs", headers={"Host": "box.lan:5000"}).status_code == 200
    assert client.get("/api/v1/jobs", headers={"Host": "evil.example"}).status_code == 403
    app.extensions["digitslite"].index.close()


def test_which_hosts_a_listening_address_answers_to():
    assert host_allowed("10.0.0.5:80", "10.0.0.5", ())
    assert not host_allowed("evil.example", "10.0.0.5", ())
    assert host_allowed("anything.example", "0.0.0.0", ())
    assert not host_allowed("anything.example", "0.0.0.0", ("box.lan",))
    assert host_allowed("[::1]:5000", "::1", ()) and host_allowed("localhost:1", "::1", ())


def test_a_real_loopback_server_refuses_a_rebound_host(tmp_path):
    with running_server(tmp_path / "jobs", [tmp_path]) as server:
        port = server.url.rsplit(":", 1)[1]
        client = server.client()
        rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
        response = client.request("POST", "/api/v1/datasets", body=json.dumps({"name": "x"}).encode(),
                                  content_type="application/json", headers=rebound)
        assert response.status == 403, response.body
        assert client.get("/api/v1/jobs").status == 200
