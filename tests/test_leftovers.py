"""The end-of-session check finds a process the suite started and left running, and stops it."""
import os
import subprocess
import sys

from tests.leftovers import stop_leftovers


def test_a_marked_process_left_running_is_found_and_killed():
    mark = "DIGITSLITE_TEST_SUITE=leftover-check"
    env = {**os.environ, "DIGITSLITE_TEST_SUITE": "leftover-check"}
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env)
    try:
        found = stop_leftovers(mark, exit_wait_s=0.0)
        assert [pid for pid, _ in found] == [process.pid]
        assert process.wait(timeout=10) < 0  # killed by the check
        assert stop_leftovers(mark, exit_wait_s=0.0) == []
    finally:
        process.kill()
        process.wait()
