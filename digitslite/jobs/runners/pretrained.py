"""Pretrained jobs: weights with their deploy network, kept under fixed names so that models and
inference use them alike, wherever they came from.

Sources: files (uploaded, or server paths), checked against the deploy network; an entry of a
model store, imported with every checksum verified (a failed import leaves no model behind); or
initial FCN weights made by net surgery from another pretrained job's classifier. The job folder
then holds deploy.prototxt, weights.caffemodel, network.prototxt when a trainable network came
along (so models can fine-tune from it), solver.prototxt when a solver did, and dataset.json with
the class names and palette when they are known (so inference can colour its output). A store
entry or a surgery result also stays whole in entry/, whose info.json says where it came from; the
fixed names are hard links to its files, so large weights are stored once.
"""
import os
import shutil
from pathlib import Path
from typing import Any

from digitslite.caffe.caffemodel import match_weights, read_caffemodel
from digitslite.caffe.paramshapes import param_shapes
from digitslite.caffe.prototxt import read_net
from digitslite.datasets.colormap import default_palette, read_class_names, read_colormap
from digitslite.errors import UserError
from digitslite.fileio import read_json, write_json_atomically
from digitslite.jobs.folder import INPUTS_DIR
from digitslite.jobs.runners.context import RunContext
from digitslite.jobs.runners.names import (
    DATASET_INFO_FILE,
    DEPLOY_FILE,
    NETWORK_FILE,
    PRETRAINED_WEIGHTS,
    SOLVER_FILE,
)
from digitslite.store import client
from digitslite.store.convolutionalize import convolutionalize
from digitslite.store.format import INFO_FILE, ModelInfo, parse_info
from digitslite.store.importer import import_model
from digitslite.store.listing import summarise

FILE_ROLES = ("deploy", "weights", "network", "dataset_info", "classes", "colormap")
ENTRY_DIR = "entry"  # an imported store entry or a surgery result, as digitslite.store wrote it
API_WEIGHTS_HINT = "through the API, that copy is weights_file: a path on the server, inside the data roots"


def input_path(params: dict[str, Any], role: str, job_dir: Path) -> Path | None:
    """Where the file of `role` is: in the job's inputs/ for uploads, else the server path."""
    value = params["files"].get(role)
    if value is None:
        return None
    return job_dir / INPUTS_DIR / value if params["source"] == "upload" else Path(value)


def _class_record(names: list[str], palette: list | None) -> dict[str, Any]:
    """dataset.json's content: the class names and one colour each (a default palette if none)."""
    palette = palette or default_palette(len(names))
    if len(palette) != len(names):
        raise UserError(f"{len(names)} class names but {len(palette)} colours; give one colour per class")
    return {"classes": names, "palette": [list(colour) for colour in palette]}


def _class_info(params: dict[str, Any], job_dir: Path) -> dict[str, Any] | None:
    """Class names and palette: a dataset.json that came along, or classes / colormap files."""
    info_file = input_path(params, "dataset_info", job_dir)
    if info_file is not None:
        info = read_json(info_file)
        return _class_record(info["classes"], info.get("palette"))
    classes_file = input_path(params, "classes", job_dir)
    colormap_file = input_path(params, "colormap", job_dir)
    colormap = read_colormap(colormap_file) if colormap_file else None
    names = read_class_names(classes_file) if classes_file else None
    if names is None and colormap is None:
        return None
    if names is None:
        names = [name or f"class {index}" for index, name in enumerate(colormap.names)]
    return _class_record(names, colormap.colours if colormap else None)


def _install_files(ctx: RunContext) -> None:
    deploy_file = input_path(ctx.params, "deploy", ctx.job_dir)
    weights_file = input_path(ctx.params, "weights", ctx.job_dir)
    deploy = read_net(deploy_file)
    ctx.report(0.2, "reading the weights")
    report = match_weights(read_caffemodel(weights_file), param_shapes(deploy), source_name=weights_file.name)
    if report.missing:
        raise UserError(f"{weights_file.name} has no weights for the deploy network's layers "
                        f"{', '.join(report.missing)}; import the weights trained with this network")
    if not report.weights:
        raise UserError(f"{weights_file.name} shares no layer name with {deploy_file.name}; import the "
                        "weights trained with this network")
    ctx.report(0.8, "installing the files")
    shutil.copyfile(deploy_file, ctx.job_dir / DEPLOY_FILE)
    shutil.copyfile(weights_file, ctx.job_dir / PRETRAINED_WEIGHTS)
    network_file = input_path(ctx.params, "network", ctx.job_dir)
    if network_file is not None:
        read_net(network_file)
        shutil.copyfile(network_file, ctx.job_dir / NETWORK_FILE)
    info = _class_info(ctx.params, ctx.job_dir)
    if info is not None:
        write_json_atomically(ctx.job_dir / DATASET_INFO_FILE, info)
    print(f"imported {len(report.weights)} layers of weights; ignored {len(report.ignored)} unused ones",
          flush=True)


# ----------------------------------------------------------------------------------------------
# store entries


def _size_text(size: int | None) -> str:
    if size is None:
        return "size unknown"
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


class _Downloads:
    """The importer's per-file progress as the job's: bytes so far over the entry's size."""

    def __init__(self, ctx: RunContext, size: int | None):
        self.ctx, self.size, self.received = ctx, size, {}

    def __call__(self, file: str, done: int, total: int | None) -> None:
        self.ctx.check_stop()
        if file not in self.received:
            print(f"fetching {file} ({_size_text(total)})", flush=True)
        self.received[file] = done
        whole, part = (self.size, sum(self.received.values())) if self.size else (total, done)
        fraction = part / whole if whole else 0.0
        self.ctx.report(0.95 * min(fraction, 1.0), f"{file}: {_size_text(done)} of {_size_text(total)}")


def server_fetch_policy() -> client.FetchPolicy:
    """A server's job fetches a file's url only from the store's own host and the hosts of
    DIGITSLITE_STORE_FETCH_HOSTS (comma-separated host[:port]), which the worker inherits."""
    hosts = os.environ.get("DIGITSLITE_STORE_FETCH_HOSTS", "").split(",")
    return client.FetchPolicy(url_hosts=tuple(host.strip().lower() for host in hosts if host.strip()))


def _entry_info(folder: Path) -> ModelInfo | None:
    info_file = folder / INFO_FILE
    return parse_info(read_json(info_file), str(info_file)) if info_file.is_file() else None


def _import_entry(ctx: RunContext, dest: Path) -> None:
    """Import the store entry into `dest`: every file fetched and its checksum verified first."""
    store, name = ctx.params["store"], ctx.params["entry"]
    info_location = client.join(store, name, INFO_FILE)
    info = parse_info(client.read_index_file(info_location), info_location)
    if not info.snapshot_file:
        raise UserError(f'{info_location}: the entry brings no weights (no "snapshot file"), so it cannot be '
                        "a pretrained job; give its network as a prototxt when you create a model")
    weights_file = ctx.params.get("weights_file")
    print(f"importing {name} from {store}", flush=True)
    try:
        imported = import_model(store, name, dest, _Downloads(ctx, summarise(name, info).size),
                                local_files={"snapshot file": weights_file} if weights_file else None,
                                group_upscores=ctx.params.get("group_upscores", False),
                                policy=server_fetch_policy())
    except client.StoreUnreachable as exc:
        raise client.StoreUnreachable(f"{exc}; {API_WEIGHTS_HINT}") from None
    for note in imported.conversions:
        print(f"converted: {note}", flush=True)
    print(f"checksums verified: {', '.join(imported.info.files)}", flush=True)


def _convolutionalize(ctx: RunContext, dest: Path) -> None:
    """Make `dest` hold the FCN's initial weights, carried over from the classifier job by net surgery."""
    classifier = ctx.other_job(ctx.params["classifier"], "classifier")
    network = ctx.params["network"]
    ctx.report(0.1, f"net surgery: {classifier.spec().name} into {network}")
    made = convolutionalize(classifier.path / DEPLOY_FILE, classifier.path / PRETRAINED_WEIGHTS, dest,
                            num_classes=ctx.params["num_classes"], network=network,
                            about=_entry_info(classifier.path / ENTRY_DIR))
    for action in made.actions:
        print(f"{action.layer}: {action.action}", flush=True)


def _link(source: Path, target: Path) -> None:
    """`target` as another name of `source` (a copy where the file system has no hard links)."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _install_entry(folder: Path, job_dir: Path) -> None:
    """Give the entry's files the fixed names every pretrained job has."""
    info = _entry_info(folder)
    deploy = info.deploy_file or info.network_file
    _link(folder / deploy, job_dir / DEPLOY_FILE)
    _link(folder / info.snapshot_file, job_dir / PRETRAINED_WEIGHTS)
    network = info.data.get("train_val file") or info.network_file
    if network != deploy:
        _link(folder / network, job_dir / NETWORK_FILE)
    if info.data.get("solver file"):
        _link(folder / info.data["solver file"], job_dir / SOLVER_FILE)
    labels = info.data.get("labels file")
    names = info.classes or (read_class_names(folder / labels) if labels else None)
    if names:
        write_json_atomically(job_dir / DATASET_INFO_FILE, _class_record(names, info.palette))
    print(f"installed {info.name}: {deploy} and {info.snapshot_file}"
          + (f", trainable network {network}" if network != deploy else ""), flush=True)


_ENTRY_MAKERS = {"store": _import_entry, "convolutionalize": _convolutionalize}


def run(ctx: RunContext) -> None:
    """Install the files; a store or surgery source first makes its entry/ (kept when resumed)."""
    make_entry = _ENTRY_MAKERS.get(ctx.params["source"])
    if make_entry is None:
        _install_files(ctx)
        return
    entry = ctx.job_dir / ENTRY_DIR
    if (entry / INFO_FILE).is_file():
        print(f"{ENTRY_DIR}/ is complete from an earlier run", flush=True)  # it appears whole or not at all
    else:
        make_entry(ctx, entry)
    ctx.report(0.97, "installing the files")
    _install_entry(entry, ctx.job_dir)
