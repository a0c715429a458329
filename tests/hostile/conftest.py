"""An in-process app over a temporary jobs directory and data root, with no scheduler thread: the
refusals under test happen in the request, before anything would run."""
from pathlib import Path

import pytest

from digitslite.datasets.demo import write_demo
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


@pytest.fixture
def demo(data_root) -> Path:
    """A few small demo images and labels under the data root."""
    write_demo(data_root / "demo", count=4, val_count=2, width=32, height=32, seed=0)
    return data_root / "demo"


def dataset_body(demo: Path, **extra) -> dict:
    return {"name": "demo", "images": str(demo / "images"), "labels": str(demo / "labels"),
            "val_images": str(demo / "val_images"), "val_labels": str(demo / "val_labels"), **extra}
