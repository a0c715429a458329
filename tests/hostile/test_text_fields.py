"""Item 1: text that cannot be stored (a lone surrogate, NUL) is refused before anything is written,
and a job folder that holds such text anyway is reported at start-up instead of stopping it."""
import json

import pytest
from click.testing import CliRunner

from digitslite.cli.jobs import command as jobs_command
from digitslite.server.app import create_app
from digitslite.server.config import ServerConfig
from tests.hostile.conftest import dataset_body, job_folders


@pytest.mark.parametrize("field", ["name", "group", "notes"])
@pytest.mark.parametrize("bad", ["\ud800", "a\x00b"])
def test_unstorable_text_is_refused_before_the_job_folder_is_written(app, client, demo, tmp_path, field, bad):
    response = client.post("/api/v1/datasets", json=dataset_body(demo, **{field: bad}))
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["field"] == field and ("surrogate" in error["message"] or "U+0000" in error["message"])
    assert job_folders(tmp_path / "jobs") == []


def test_a_nul_in_a_query_field_is_refused(client):
    response = client.get("/api/v1/jobs", query_string={"text": "a\x00"})
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "text"


def _folder_with_surrogate_name(jobs_dir):
    folder = jobs_dir / "20261203-000000-abcdef"
    folder.mkdir(parents=True)
    spec = {"id": folder.name, "kind": "dataset", "name": "\ud800", "owner": "local", "created": 0.0,
            "params": {}}
    (folder / "job.json").write_text(json.dumps(spec))  # the escape \\ud800 is valid JSON
    (folder / "state.json").write_text(json.dumps({"status": "done"}))
    return folder.name


def test_start_up_and_reindex_skip_and_report_a_folder_with_unstorable_text(tmp_path, data_root, caplog):
    jobs_dir = tmp_path / "jobs"
    bad = _folder_with_surrogate_name(jobs_dir)
    app = create_app(ServerConfig(jobs_dir=jobs_dir, data_roots=(data_root,), gpus=[]))
    try:
        assert app.test_client().get("/api/v1/jobs").get_json()["total"] == 0
        assert f"job folder {bad} is unreadable" in caplog.text
    finally:
        app.extensions["digitslite"].scheduler.stop()
        app.extensions["digitslite"].server_lock.release()
        app.extensions["digitslite"].index.close()
    result = CliRunner().invoke(jobs_command, ["reindex", "--jobs-dir", str(jobs_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["unreadable"] == [bad]


def test_a_job_the_index_refuses_leaves_no_folder(app, client, demo, tmp_path, monkeypatch):
    index = app.extensions["digitslite"].index

    def refuse(folder):
        raise ValueError("job.json or state.json: name is not valid Unicode text")
    monkeypatch.setattr(index, "refresh", refuse)
    response = client.post("/api/v1/datasets", json=dataset_body(demo))
    assert response.status_code >= 400
    assert job_folders(tmp_path / "jobs") == []
