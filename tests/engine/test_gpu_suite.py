"""benchmarks/gpu_suite.sh runs end to end on the CPU (--cpu: tiny sizes), so that it still works on
the day a GPU machine is lent: every section of its table is there, with numbers."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow   # about a minute: three benchmarks on FCN-AlexNet at 48x48 and two small datasets
def test_gpu_suite_runs_on_the_cpu(tmp_path, peer):
    peer("digits__semantic-segmentation__fcn_alexnet.deploy.prototxt")
    out = tmp_path / "suite.md"
    environment = os.environ | {"PYTHON": sys.executable, "NETS": "fcn_alexnet", "PYTHONPATH": str(REPO)}
    command = ["bash", str(REPO / "benchmarks" / "gpu_suite.sh"), "--cpu", "--out", str(out)]
    process = subprocess.Popen(command, env=environment, cwd=tmp_path, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=540)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, output[-3000:]
    table = out.read_text()
    for row in ("fcn_alexnet 48x48 inference fp32 |", "inference bf16", "inference fp16",
                "fcn_alexnet 48x48 training |", "loader demo 160x120 to cpu", "loader png 480x360 to cpu",
                "vs_caffe fcn_alexnet 1x3x48x48 forward: digitslite on cpu / opencv"):
        assert row in table, f"{row!r} missing from\n{table}"
    assert "ms" in table and "images/s" in table
