"""Shared material for the distributed tests (no tests here): nets, solvers, process checks."""
import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from digitslite.caffe.caffemodel import read_weights
from tests.engine.test_train_support import fcn_net

DEADLINE_S = 120

# Solver settings that exercise every step of Caffe's update on the all-reduced gradient: momentum,
# weight decay (added after the averaging), and a clip threshold low enough to be active.
SOLVER = ('type: "SGD" base_lr: 0.1 lr_policy: "fixed" momentum: 0.9 weight_decay: 0.0005 random_seed: 5 '
          "clip_gradients: 0.5 ")


def equivalence_net(batch: int) -> str:
    """The tiny FCN without dropout (random masks differ with the rank count), with random mirroring
    (drawn per sample, so equal on any rank count) and no crop: every image keeps its one ignored
    row, so each batch normalises its loss by the same pixel count (see docs/SCALING.md)."""
    text = fcn_net().replace("dropout_ratio: 0.1", "dropout_ratio: 0.0")
    text = text.replace("transform_param { scale: 0.00390625  }",
                        "transform_param { scale: 0.00390625 mirror: true }", 1)
    assert "mirror: true" in text
    return text.replace("batch_size: 4", f"batch_size: {batch}")


def assert_weights_close(a: Path, b: Path, atol: float = 1e-5) -> None:
    """Two .caffemodels hold the same layers with values within `atol`."""
    first, second = read_weights(a), read_weights(b)
    assert first.keys() == second.keys()
    for name in first:
        for x, y in zip(first[name], second[name], strict=True):
            np.testing.assert_allclose(x, y, rtol=0, atol=atol, err_msg=name)


def alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie, or a vanished one, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def _running_processes():
    """(pid, stat fields after the command name) of every process that is neither zombie nor dead."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] not in "ZX":
                yield int(entry.name), fields


def group_members(pgid: int) -> list[int]:
    """The running processes of process group `pgid` (a rank and its data loader workers)."""
    return [pid for pid, fields in _running_processes() if int(fields[2]) == pgid]


def children(pid: int) -> list[int]:
    """The running child processes of `pid`."""
    return [child for child, fields in _running_processes() if int(fields[1]) == pid]


def wait_until(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Poll `condition` until it holds, failing with `what` at the deadline."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {deadline_s} s"
        time.sleep(0.01)


def kill_groups(pids: list[int]) -> None:
    """Teardown: SIGKILL the process groups led by `pids` that still exist."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
