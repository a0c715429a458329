"""Shared fixtures. `peer` finds the real Caffe-ecosystem files in ../shared/peer_nets.

Outside CI a missing ../shared skips the test with a reason; under CI=true it is a failure, since
CI always has ../shared beside the clone.

Every process the suite starts inherits SUITE_MARK in its environment (servers pass it on to their
workers); at the end of the session none of them may still be alive.
"""
import os
import secrets
import sys
from pathlib import Path

import pytest

from tests.leftovers import stop_leftovers

REPO_ROOT = Path(__file__).resolve().parents[1]
PEER_DIR = REPO_ROOT.parent / "shared" / "peer_nets"
SUITE_MARK = "DIGITSLITE_TEST_SUITE"


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


@pytest.fixture(autouse=True)
def _stop_started_servers():
    """A server a test started is stopped (with its workers) even when the test failed half-way;
    servers of wider-scoped fixtures, started before, stay for the next test."""
    harness = sys.modules.get("tests.server.harness")
    before = harness.servers_started() if harness is not None else 0
    yield
    harness = sys.modules.get("tests.server.harness")
    if harness is not None:
        harness.stop_started_servers(before)


def pytest_configure(config: pytest.Config) -> None:
    # Each pytest process (an xdist worker too) marks its own children with a mark of its own.
    os.environ[SUITE_MARK] = secrets.token_hex(8)


def _is_xdist_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput") and getattr(config.option, "dist", "no") != "no"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _is_xdist_controller(session.config):
        return  # its xdist workers carry its mark and check their own children
    leftovers = stop_leftovers(f"{SUITE_MARK}={os.environ[SUITE_MARK]}")
    if leftovers:
        sys.stderr.write("\nprocesses started by the test suite were still alive at its end (now killed):\n"
                         + "".join(f"  pid {pid}: {command}\n" for pid, command in leftovers))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
