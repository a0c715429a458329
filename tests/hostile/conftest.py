"""An in-process app over a temporary jobs directory and data root, with no scheduler thread: the
refusals under test happen in the request, before anything would run."""
from pathlib import Path

import pytest

from digitslite.server.app import create_app
from digitslite.server.config import ServerConfig


@pytest.fixture
def data_root(tmp_path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture
def app(tmp_path, data_root):
    app = create_app(ServerConfig(jobs_dir=tmp_path / "jobs", data_roots=(data_root,), gpus=[],
                                  scheduler=False))
    yield app
    app.extensions["digitslite"].index.close()


@pytest.fixture
def client(app):
    return app.test_client()


def job_folders(jobs_dir: Path) -> list[str]:
    return sorted(entry.name for entry in jobs_dir.iterdir() if entry.is_dir())
