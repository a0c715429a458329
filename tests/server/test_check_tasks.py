"""The form's Check tasks: a server runs at most MAX_RUNNING of them, and a result is handed back once."""
import subprocess
import sys
import time

import pytest

from digitslite.server.check_tasks import MAX_RUNNING, ChecksBusyError, CheckTasks, RunningCheck


def _blocked() -> subprocess.Popen:
    """A process that runs until its stdin closes: a check that has not finished."""
    return subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)


def test_a_check_beyond_the_running_limit_is_refused_and_a_finished_one_frees_its_place(tmp_path):
    tasks = CheckTasks()
    processes = [_blocked() for _ in range(MAX_RUNNING)]
    try:
        for number, process in enumerate(processes):
            folder = tmp_path / str(number)
            folder.mkdir()
            tasks.running[str(number)] = RunningCheck(folder, process, time.monotonic())
        with pytest.raises(ChecksBusyError):
            tasks.start({}, tmp_path)
        assert tasks.result("0") is None  # still running
        processes[0].stdin.close()
        processes[0].wait(timeout=60)
        assert "stopped before it finished" in tasks.result("0")["error"]["message"]  # no result.json
        with pytest.raises(KeyError):
            tasks.result("0")  # handed back once
        assert not (tmp_path / "0").exists()
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=60)
