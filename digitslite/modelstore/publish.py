"""Publishing a finished model job as a store entry (DIGITS' unpacked download archive plus checksums),
so that another digitslite server, or DIGITS, lists and imports it.

Read from the job folder, as `digitslite train` leaves it: `solver.prototxt` and the all-in-one
network it names (`train_val.prototxt`; without a solver, `train_val.prototxt` or
`network.prototxt`), the snapshots `<prefix>_iter_N.caffemodel` anywhere in the folder (the newest
unless an iteration is chosen), `metrics.jsonl` (its last "val" line at or before that iteration
becomes the entry's metrics) and `job.json` (the job's name). From the dataset folder's
`dataset.json`: classes, palette, image size and the mean file.
"""
import datetime
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitslite import __version__
from digitslite.caffe import caffe_pb2
from digitslite.caffe.deploy import DATA_TYPES, deploy_net
from digitslite.caffe.prototxt import filter_net, parse_solver, read_net, write_net, write_solver
from digitslite.datasets.mean import read_mean_file
from digitslite.errors import UserError
from digitslite.fileio import read_json
from digitslite.layout import (
    DATASET_INFO_FILE,
    DEPLOY_FILE,
    MEAN_FILE,
    NETWORK_FILE,
    SOLVER_FILE,
    TRAIN_VAL_FILE,
    JobFiles,
    snapshot_iteration,
)
from digitslite.modelstore.entries import add_to_master, write_info
from digitslite.modelstore.format import LABELS_FILE, ModelInfo, is_plain_name
from digitslite.modelstore.legacy import derive_missing_crop_offsets
from digitslite.tasks import task_of


@dataclass(frozen=True)
class _Training:
    """What a finished job trained, gathered (and checked) before anything is written."""

    job: Path
    network_path: Path
    net: caffe_pb2.NetParameter              # with every Crop offset written
    network_changed: bool                    # offsets had to be derived, so the file is rewritten
    input_shape: tuple[int, int, int, int]   # N, C, H, W of the deploy net (the largest training image)
    deploy: caffe_pb2.NetParameter
    solver: caffe_pb2.SolverParameter | None
    snapshot: Path
    dataset_info: dict[str, Any]
    mean: list[float] | None
    mean_file: Path | None

    @classmethod
    def gather(cls, job: Path, iteration: int | None, dataset: Path) -> "_Training":
        solver = _job_solver(job)
        network_path = _network_file(job, solver)
        snapshot = _snapshot(job, iteration)
        dataset_path, dataset_info = _dataset(dataset)
        written = read_net(network_path)
        net, _ = derive_missing_crop_offsets(written)
        input_shape = (1, int(dataset_info.get("channels") or 3), *_image_size(dataset_info, dataset_path))
        mean, mean_file = _mean(net, dataset_path, dataset_info)
        return cls(job, network_path, net, net != written, input_shape, deploy_net(net, input_shape), solver,
                   snapshot, dataset_info, mean, mean_file)


def publish_job(job_dir: str | os.PathLike, store_dir: str | os.PathLike, name: str, *,
                dataset: str | os.PathLike, iteration: int | None = None, title: str | None = None,
                note: str | None = None, license: str | None = None, source: str | None = None) -> ModelInfo:
    """Make `store_dir`/`name` from the finished training in `job_dir` and list it in master.json.

    `dataset` is the dataset folder the job trained on (or its dataset.json). Returns the entry's
    info.json. The entry appears whole or not at all.
    """
    job, store = Path(job_dir), Path(store_dir)
    if not is_plain_name(name):
        raise UserError(f"{name!r} cannot name a store entry; use letters, digits, '.', '_', '+' or '-'")
    entry = store / name
    if entry.exists():
        raise UserError(f"{entry} already exists; choose another name or remove it from the store")
    training = _Training.gather(job, iteration, Path(dataset))
    store.mkdir(parents=True, exist_ok=True)
    staging = store / f".{name}.publishing"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        _write_files(training, staging)
        described = {"name": title or _job_name(job) or name, "license": license, "note": note,
                     "source": source or f"digitslite job {job.name}"}
        info = write_info(staging, _info_data(training, described, staging))
        os.rename(staging, entry)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    add_to_master(store, name)
    return info


def _write_files(training: _Training, folder: Path) -> None:
    """The entry's files: network, deploy net, snapshot, labels, and the solver and mean if any."""
    if training.network_changed:
        write_net(training.net, folder / TRAIN_VAL_FILE)
    else:
        shutil.copyfile(training.network_path, folder / TRAIN_VAL_FILE)
    write_net(training.deploy, folder / DEPLOY_FILE)
    shutil.copyfile(training.snapshot, folder / training.snapshot.name)
    classes = training.dataset_info.get("classes") or []
    (folder / LABELS_FILE).write_text("".join(f"{label}\n" for label in classes), encoding="utf-8")
    if training.solver is not None:
        solver = caffe_pb2.SolverParameter()
        solver.CopyFrom(training.solver)
        solver.net = TRAIN_VAL_FILE
        if os.path.isabs(solver.snapshot_prefix):
            solver.ClearField("snapshot_prefix")    # a path of this machine means nothing elsewhere
        write_solver(solver, folder / SOLVER_FILE)
    if training.mean_file is not None:
        shutil.copyfile(training.mean_file, folder / MEAN_FILE)


def _info_data(training: _Training, described: dict[str, Any], folder: Path) -> dict[str, Any]:
    """info.json's keys (without "files") for the files _write_files wrote into `folder`."""
    _, channels, height, width = training.input_shape
    iteration = iteration_of(training.snapshot)
    optional = {"solver file": SOLVER_FILE, "mean file": MEAN_FILE}
    return {
        **described,
        "framework": "caffe",
        "task": task_of(training.dataset_info).store_task,
        "model file": TRAIN_VAL_FILE,
        "train_val file": TRAIN_VAL_FILE,
        "deploy file": DEPLOY_FILE,
        "snapshot file": training.snapshot.name,
        "labels file": LABELS_FILE,
        **{key: name for key, name in optional.items() if (folder / name).exists()},
        "classes": list(training.dataset_info.get("classes") or []),
        "palette": training.dataset_info.get("palette"),
        "metrics": _metrics(training.job, iteration),
        "input size": {"channels": channels, "height": height, "width": width},
        "image dimensions": [height, width, channels],
        "mean": training.mean,
        "job id": training.job.name,
        "snapshot iteration": iteration,
        "digitslite version": __version__,
        "creation time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _job_solver(job: Path) -> caffe_pb2.SolverParameter | None:
    """The job's solver as written (without Caffe's path defaults, which name this machine's folders)."""
    path = job / SOLVER_FILE
    return parse_solver(path.read_text(encoding="utf-8"), str(path)) if path.is_file() else None


def _network_file(job: Path, solver: caffe_pb2.SolverParameter | None) -> Path:
    """The all-in-one network the job trained: the one its solver names, else the usual names."""
    named = [job / solver.net] if solver is not None and solver.net else []
    for path in [*named, job / TRAIN_VAL_FILE, job / NETWORK_FILE]:
        if path.is_file():
            return path
    raise UserError(f"{job}: no {TRAIN_VAL_FILE} (nor a solver naming the network), so not a model job "
                    "folder; give the folder of a training job")


def _snapshot(job: Path, iteration: int | None) -> Path:
    """The snapshot of `iteration`, or the newest, anywhere below the job folder."""
    found: dict[int, list[Path]] = {}
    for path in sorted(job.rglob("*.caffemodel")):
        number = snapshot_iteration(path.name)
        if number is not None:
            found.setdefault(number, []).append(path)
    if not found:
        raise UserError(f"{job}: no snapshot (*_iter_N.caffemodel); publish a job that has trained and "
                        "saved one")
    chosen = max(found) if iteration is None else iteration
    if chosen not in found:
        raise UserError(f"{job}: no snapshot of iteration {iteration}; choose one of: "
                        f"{', '.join(map(str, sorted(found)))}")
    if len(found[chosen]) > 1:
        raise UserError(f"{job}: several snapshots of iteration {chosen} "
                        f"({', '.join(str(path.relative_to(job)) for path in found[chosen])}); move the "
                        "ones of other runs out of the job folder")
    return found[chosen][0]


def iteration_of(snapshot: Path) -> int:
    return snapshot_iteration(snapshot.name)


def _dataset(path: Path) -> tuple[Path, dict[str, Any]]:
    """(dataset folder, dataset.json content) from the folder or the file."""
    info_path = path if path.name == DATASET_INFO_FILE else path / DATASET_INFO_FILE
    try:
        return info_path.parent, read_json(info_path)
    except FileNotFoundError:
        raise UserError(f"{path}: no {DATASET_INFO_FILE}; give the folder of the dataset the job trained on"
                        ) from None
    except ValueError as exc:
        raise UserError(f"{info_path}: not valid JSON ({exc}); the dataset folder is damaged") from None


def _image_size(dataset_info: dict[str, Any], dataset_path: Path) -> tuple[int, int]:
    """(height, width) of the deploy input: the largest training image."""
    try:
        width, height = dataset_info["image_size"]["train"]["max"]
        return int(height), int(width)
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{dataset_path / DATASET_INFO_FILE}: no image size for the train split; "
                        "recreate the dataset with this version of digitslite") from None


def _mean(net: caffe_pb2.NetParameter, dataset_path: Path, dataset_info: dict[str, Any]
          ) -> tuple[list[float] | None, Path | None]:
    """What the network subtracts from its input in its TEST data layer: (per-channel values, the
    dataset's mean file when that is what it uses). None when the network does it itself (Power)."""
    test_data = [layer for layer in filter_net(net, phase="test").layer if layer.type in DATA_TYPES]
    for layer in test_data:
        transform = layer.transform_param
        if len(transform.mean_value):
            return [float(value) for value in transform.mean_value], None
        if transform.HasField("mean_file"):
            if not dataset_info.get("mean_file"):
                raise UserError(f"{dataset_path}: the network subtracts a mean file but the dataset has "
                                "none; recreate the dataset with a mean image")
            mean_file = dataset_path / dataset_info["mean_file"]
            per_channel = read_mean_file(mean_file).mean(axis=(1, 2), dtype=np.float64)
            return [round(float(value), 4) for value in per_channel], mean_file
    return None, None


def _metrics(job: Path, iteration: int) -> dict[str, Any]:
    """The last validation line of metrics.jsonl at or before `iteration` (without its "phase")."""
    path = JobFiles(job).metrics_file
    if not path.is_file():
        return {}
    chosen: dict[str, Any] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue    # a blank line, or a line cut short by a killed training
        if record.get("phase") == "val" and record.get("iteration", 0) <= iteration:
            chosen = {key: value for key, value in record.items() if key != "phase"}
    return chosen


def _job_name(job: Path) -> str | None:
    spec = JobFiles(job).spec_file
    return read_json(spec).get("name") if spec.is_file() else None
