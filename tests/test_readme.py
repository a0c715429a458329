"""The README's commands run as written, in their order, in a fresh copy of the checkout.

Every ```sh block is run but the two `make` lines (`make run` serves until stopped, `make test` is
the suite this test belongs to) and blocks that start with "# needs internet". To stay fast the
training length is cut: the README's `--max-iter N` becomes `--max-iter 2`, and the snapshot it
names, `snapshot_iter_N`, becomes `snapshot_iter_2`. Nothing else is changed.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TOP_LEVEL_SKIPPED = {".git", ".venv", "data", "jobs", "test-output", ".ruff_cache", "build"}  # not in a clone
SHORT_RUN = 2


def readme_commands(text: str) -> list[str]:
    """The shell commands of the README's runnable ```sh blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.M | re.S):
        if block.startswith("# needs internet"):
            continue
        for command in block.replace("\\\n", " ").splitlines():
            command = command.strip()
            if command and not command.startswith(("#", "make ")):
                commands.append(command)
    return commands


def shortened(commands: list[str]) -> list[str]:
    """The commands with the training cut to SHORT_RUN iterations and its snapshot renamed to match."""
    lengths = {match for command in commands for match in re.findall(r"--max-iter (\d+)", command)}
    assert len(lengths) == 1, f"the README should train once with one --max-iter, found {lengths}"
    (length,) = lengths
    return [command.replace(f"--max-iter {length}", f"--max-iter {SHORT_RUN}")
            .replace(f"snapshot_iter_{length}.", f"snapshot_iter_{SHORT_RUN}.") for command in commands]


def test_readme_commands_are_found():
    commands = readme_commands(README.read_text(encoding="utf-8"))
    programs = [command.split()[:2] for command in commands]
    assert ["digitslite", "demo"] in programs and ["digitslite", "infer"] in programs
    assert not any("surgery" in command for command in commands), "the internet-only block is not run"
    assert all(command.startswith("digitslite ") for command in commands), commands


@pytest.mark.slow
def test_readme_commands_run_in_order_in_a_fresh_copy(tmp_path):
    clone = tmp_path / "clone"
    def left_out(folder: str, names: list[str]) -> list[str]:
        skipped = TOP_LEVEL_SKIPPED if Path(folder) == ROOT else set()
        return [name for name in names if name in skipped or name == "__pycache__"]

    shutil.copytree(ROOT, clone, ignore=left_out)
    env = {**os.environ, "PYTHONPATH": str(clone),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for command in shortened(readme_commands(README.read_text(encoding="utf-8"))):
        done = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, f"README command failed: {command}\n{done.stdout}\n{done.stderr}"
    assert (clone / "out" / "0000_score.png").is_file()
    assert (clone / "out" / "0000_score_overlay.png").is_file()
    assert (clone / "fixed.prototxt").is_file()
    assert {path.name for path in (clone / "out_colour").iterdir()} >= {
        "00000_grey.png", "00000_colour.png", "00000_original.png", "00000_distribution.npy"}
    names = (clone / "data" / "scenes" / "classes.txt").read_text().split()
    assert json.loads((clone / "data" / "scenes_db" / "dataset.json").read_text())["classes"] == names
