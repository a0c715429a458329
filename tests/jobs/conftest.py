"""Fixtures of the job tests that run real servers and workers."""
import pytest

from tests.server.harness import kill_workers, make_demo


@pytest.fixture
def site(tmp_path):
    """A data root with demo data and a jobs directory; every worker is killed at the end."""
    demo = make_demo(tmp_path / "data", count=8, val_count=4)
    yield tmp_path / "jobs", [tmp_path / "data"], demo
    kill_workers(tmp_path / "jobs")
