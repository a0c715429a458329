"""The project's set-up contracts: the command line, docker-compose.yml, the CI script."""
import subprocess
import sys

import yaml


def test_compose_file_runs_the_server_on_5000_with_volumes_and_a_gpu_block(repo_root):
    text = (repo_root / "docker-compose.yml").read_text()
    service = yaml.safe_load(text)["services"]["digitslite"]
    assert service["build"] == "."
    assert "serve" in service["command"] and "5000" in service["command"]
    assert "5000:5000" in service["ports"]
    mounts = {volume.split(":")[1] for volume in service["volumes"]}
    assert mounts == {"/data/jobs", "/data/datasets"}
    assert service["environment"]["DIGITSLITE_JOBS_DIR"] in mounts
    # The GPU reservation ships commented out: uncommenting it must give a valid device request.
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "# deploy:")
    block = [line.replace("# ", "", 1) for line in lines[start:] if line.strip().startswith("#")]
    gpu_block = "\n".join(line[4:] for line in block)
    devices = yaml.safe_load(gpu_block)["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]


def test_ci_script_runs_make_test(repo_root):
    script = (repo_root / ".ci" / "run").read_text()
    assert "make test" in script and "set -euo pipefail" in script


COMMANDS = ("dataset", "demo", "infer", "jobs", "net", "report", "serve", "store", "surgery", "train",
            "users")
# Runs the command line's help, and every command's, in a fresh interpreter; prints the torch modules
# loaded by then (none: torch takes seconds to import and the help needs none of it).
HELP_PROBE = """
import sys
from digitslite.cli import main
for args in [["--help"]] + [[name, "--help"] for name in sys.argv[1:]]:
    try:
        main(args, prog_name="digitslite")
    except SystemExit as exc:
        assert exc.code == 0, (args, exc.code)
print("torch modules:", sorted(name for name in sys.modules if name.split(".")[0] == "torch"))
"""


def test_help_lists_every_command_without_importing_torch():
    probe = subprocess.run([sys.executable, "-c", HELP_PROBE, *COMMANDS], capture_output=True, text=True,
                           timeout=120)
    assert probe.returncode == 0, probe.stderr[-2000:]
    out = probe.stdout
    assert out.rstrip().endswith("torch modules: []"), out[-500:]
    listing = out[out.index("Commands:"):out.index("Usage: digitslite dataset")]
    assert [line.split()[0] for line in listing.splitlines()[1:] if line.strip()] == list(COMMANDS)
    for name in COMMANDS:
        assert f"Usage: digitslite {name}" in out


def test_module_entry_point_prints_version():
    out = subprocess.run([sys.executable, "-m", "digitslite", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip().endswith("0.1.0")
