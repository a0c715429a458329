"""`digitslite store list | import | publish | index` through the real command line group."""
import json

from click.testing import CliRunner

from digitslite.cli import main
from digitslite.modelstore.entries import add_to_master
from tests.store.helpers import CLASSES, closed_port_url, write_finished_job, write_tiny_entry


def _run(*args, **env):
    return CliRunner().invoke(main, ["store", *map(str, args)], env=env)


def test_list_json_shows_reachable_and_unreachable_stores(tmp_path):
    write_tiny_entry(tmp_path / "store" / "tiny")
    add_to_master(tmp_path / "store", "tiny")
    dead = closed_port_url()

    result = _run("list", "--json", DIGITSLITE_STORE_URLS=f"{tmp_path / 'store'},{dead}")

    assert result.exit_code == 0, result.output
    stores = json.loads(result.output)["stores"]
    assert [(store["url"], store["reachable"]) for store in stores][1:] == [
        (str(tmp_path / "store"), True), (dead, False)]
    assert stores[0]["reachable"] and {model["id"] for model in stores[0]["models"]} == {
        "bvlc_alexnet", "fcn-alexnet", "fcn8s-voc"}
    (tiny,) = stores[1]["models"]
    assert (tiny["name"], tiny["classes"], tiny["metrics"], tiny["license"], tiny["weights"]) == (
        "tiny FCN", CLASSES, {"mean_iu": 0.5}, "CC0", "included")
    assert "cannot reach" in stores[2]["error"]


def test_import_prints_one_line_errors_and_imports(tmp_path):
    write_tiny_entry(tmp_path / "store" / "tiny")
    missing = _run("import", tmp_path / "store", "nothing", "--dest", tmp_path / "x")
    assert missing.exit_code == 1 and "Traceback" not in missing.output
    assert missing.stderr.splitlines()[-1].startswith("error: ")
    assert "no such file; check the store folder and the model name" in missing.stderr

    result = _run("import", tmp_path / "store", "tiny", "--dest", tmp_path / "model", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["weights"] == str(tmp_path / "model" / "weights.caffemodel")


def test_publish_then_index(tmp_path):
    write_finished_job(tmp_path / "job", tmp_path / "dataset")
    result = _run("publish", tmp_path / "job", tmp_path / "store", "demo", "--dataset", tmp_path / "dataset",
                  "--license", "CC0", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["license"] == "CC0"

    (tmp_path / "store" / "demo" / "README.txt").write_text("added by hand\n")
    result = _run("index", tmp_path / "store", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["children"] == ["demo"]
    info = json.loads((tmp_path / "store" / "demo" / "info.json").read_text())
    assert "README.txt" in info["files"]
