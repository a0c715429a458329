"""CPU training keeps freed memory: a large block freed and allocated again costs no page faults."""
import subprocess
import sys

import pytest

PROBE = """
import resource, sys, torch
from digitslite.engine.host_memory import retain_freed_memory
if sys.argv[1] == "retain" and not retain_freed_memory():
    print("no mallopt")
    sys.exit()
for _ in range(16):           # glibc settles on reusing the block after a few rounds
    torch.ones(64 << 18)      # 64 MiB, freed at once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    torch.ones(64 << 18)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_freed_block_is_reused_without_page_faults() -> None:
    retained = _faults("retain")
    if retained == "no mallopt":
        pytest.skip("this C library has no mallopt (not glibc)")
    default = int(_faults("default"))
    assert default > 100_000          # 8 x 16,384 pages of 4 KiB faulted in again
    assert int(retained) <= default // 8     # at most one of the 8 rounds faulted in again
