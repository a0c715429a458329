"""Shared fixtures. `peer` finds the real Caffe-ecosystem files in ../shared/peer_nets.

Outside CI a missing ../shared skips the test with a reason; under CI=true it is a failure, since
CI always has ../shared beside the clone.
"""
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PEER_DIR = REPO_ROOT.parent / "shared" / "peer_nets"


def _peer_path(name: str) -> Path:
    path = PEER_DIR / name
    if path.is_file():
        return path
    reason = f"peer file {path} is not present (../shared/peer_nets beside the checkout)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def peer():
    """Return a function: peer(name) -> Path of ../shared/peer_nets/<name>, or skip/fail."""
    return _peer_path


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT
