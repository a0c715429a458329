"""`pip install .` (not editable) gives a working server: the wheel carries the templates, the static
files, the standard networks and the embedded store, and nothing reads them from a checkout.

The wheel is built from a copy of the sources and installed without its dependencies into a fresh
virtual environment that sees this environment's packages (torch, flask...) through a .pth line, so
the test works offline and installs nothing else.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.server.harness import Server, dataset_request, make_demo, wait_for

pytestmark = pytest.mark.slow
SOURCES = ("setup.py", "pyproject.toml", "README.md", "digitslite")


def _run(*args: str | Path, cwd: Path) -> None:
    done = subprocess.run([str(arg) for arg in args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=_clean_env())
    assert done.returncode == 0, f"{args}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


def _clean_env() -> dict[str, str]:
    """This environment without PYTHONPATH: the installed package alone must be found."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A virtual environment with the wheel installed; its bin/ folder."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO_ROOT / name, source / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", root / "dist", source, cwd=root)
    wheel, = (root / "dist").glob("digitslite-*.whl")
    venv = root / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root)
    site = Path(subprocess.check_output([venv / "bin" / "python", "-c",
                                         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True, env=_clean_env()).strip())
    (site / "shared-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps",
         "--no-index", "-q", wheel, cwd=root)
    return venv / "bin"


class WheelServer(Server):
    """`digitslite serve` as the installed console script, started outside the checkout."""

    def __init__(self, bin_dir: Path, jobs_dir: Path, data_roots: list[Path]):
        super().__init__(jobs_dir, data_roots)
        self.bin_dir = bin_dir
        self.env = {key: value for key, value in self.env.items() if key != "PYTHONPATH"}

    def command(self) -> list[str]:
        return [str(self.bin_dir / "digitslite"), *super().command()[3:]]


def test_the_wheel_carries_its_files_and_imports_from_itself(installed):
    where = subprocess.run([installed / "python", "-c", "import digitslite; print(digitslite.__file__)"],
                           capture_output=True, text=True, env=_clean_env(), cwd=installed, check=True)
    package = Path(where.stdout.strip()).parent
    assert package.parent.name == "site-packages" and REPO_ROOT not in package.parents
    expected = [path.relative_to(REPO_ROOT / "digitslite")
                for folder in ("server/templates", "server/static", "network_defs", "model_store")
                for path in (REPO_ROOT / "digitslite" / folder).rglob("*") if path.is_file()]
    assert [path for path in expected if not (package / path).is_file()] == []


def test_the_installed_server_serves_pages_networks_the_store_and_runs_a_job(installed, tmp_path):
    demo = make_demo(tmp_path / "data")
    server = WheelServer(installed, tmp_path / "jobs", [tmp_path / "data"])
    server.start()
    try:
        assert str(installed) in server.process.args[0]
        client = server.client()
        home = client.get("/")
        assert home.status == 200 and b"<html" in home.body.lower()
        assert client.get("/static/app.css").status == 200
        new_model = client.get("/models/new")
        assert new_model.status == 200 and b"fcn_tiny" in new_model.body
        stores = client.get("/api/v1/store/models").json()["stores"]
        assert {model["id"] for model in stores[0]["models"]} == {"bvlc_alexnet", "fcn-alexnet", "fcn8s-voc"}
        created = client.post("/api/v1/datasets", dataset_request(demo))
        assert created.status == 201, created.body
        job = client.wait_status(created.json()["jobs"][0]["id"])
        assert job["status"] == "done", server.log()
    finally:
        server.stop()
    assert wait_for(lambda: server.process.poll() is not None, 10, "the server to exit")
