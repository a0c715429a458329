"""Model pages: the New model form (network tabs, the custom-network editor, solver fields with a
learning-rate preview), a model's page (live charts over SSE, per-class IoU, usage, snapshots,
publishing, log) and a pretrained model's page. Their JSON and SVG helpers are in model_helpers."""
import os
import time
from pathlib import Path
from typing import Any

from flask import render_template, request

from digitslite.caffe import caffe_pb2
from digitslite.caffe.partition import BALANCES
from digitslite.caffe.prototxt import filter_net, read_net, read_solver
from digitslite.engine.choices import AMP_MODES, DEFAULT_SOLVER, PIPELINE_SCHEDULES, SOLVER_TYPES
from digitslite.engine.lr_policy import POLICIES, POLICY_FIELDS
from digitslite.jobs.folder import JobFolder
from digitslite.jobs.index import JobFilter
from digitslite.jobs.job import RESUMABLE, Status
from digitslite.layout import LOG_FILE, SPEC_FILE, STATE_FILE
from digitslite.networks import list_networks, load_network, load_solver
from digitslite.server.create_model import SOLVER_NAMES
from digitslite.server.pages.blueprint import pages
from digitslite.server.pages.jobfiles import dataset_job_info, log_tail, read_json_if_present
from digitslite.server.pages.timeline import job_timeline
from digitslite.server.pages.view import PAGE_OF_KIND, page_job
from digitslite.server.schemas.requests import NO_AMP
from digitslite.server.services import services
from digitslite.tasks import task_of

CHOICES_SHOWN = 100  # datasets, models and pretrained jobs offered by the form
SOLVER_DEFAULTS = ("type", "base_lr", "lr_policy", "gamma", "power", "stepsize", "momentum", "momentum2",
                   "weight_decay", "max_iter", "test_interval", "snapshot", "display")
DEFAULT_CLASSES = 2  # the class count a network is checked with when no dataset is chosen
PRETRAINED_SUFFIXES = (".prototxt", ".caffemodel", ".json", ".txt")
JOB_FILES = (SPEC_FILE, STATE_FILE, LOG_FILE)


def _recent(kind: str, per_page: int = CHOICES_SHOWN) -> list[dict[str, Any]]:
    return services().index.list(JobFilter(kind=kind), per_page=per_page)[0]


def dataset_facts(row: dict[str, Any]) -> dict[str, Any]:
    """What the form's checks need to know of a dataset: class count, training pairs, ignore value, C,H,W."""
    info = dataset_job_info(services().scheduler.folder(row["id"])) or {}
    size = ((info.get("image_size") or {}).get("train") or {}).get("max")
    return {"id": row["id"], "name": row["name"], "status": row["status"],
            "classes": len(info.get("classes", [])) or None, "train": info.get("counts", {}).get("train"),
            "shape": [info.get("channels", 3), size[1], size[0]] if size else None,
            "ignore": info.get("ignore_label")}


def _dataset_choices() -> list[dict[str, Any]]:
    """Datasets a model can train on, or wait for."""
    return [dataset_facts(row) for row in _recent("dataset") if row["status"] not in RESUMABLE]


def _shown(value: Any) -> Any:
    """Solver floats are float32: 0.002 reads back as 0.0020000000949949026 unless rounded."""
    return float(f"{value:.6g}") if isinstance(value, float) else value


def _solver_fields(solver: caffe_pb2.SolverParameter) -> dict[str, Any]:
    """The solver fields the form shows (in grey, for its blank fields) and the LR preview draws."""
    fields = {name: _shown(getattr(solver, name)) for name in SOLVER_DEFAULTS if solver.HasField(name)}
    if solver.stepvalue:
        fields["stepvalue"] = ",".join(map(str, solver.stepvalue))
    return fields


def _train_batch(net: caffe_pb2.NetParameter) -> int:
    train = filter_net(net, phase="train")
    return next((layer.data_param.batch_size for layer in train.layer if layer.type == "Data"), 1)


def _network_choices() -> list[dict[str, Any]]:
    """The standard networks with their default solver and training batch size."""
    networks = []
    for network in list_networks():
        title = network.title.removeprefix(f"{network.name}:").strip()
        networks.append({"name": network.name, "title": title,
                         "batch": _train_batch(load_network(network.name, DEFAULT_CLASSES)),
                         "solver": _solver_fields(load_solver(network.name))})
    return networks


def _trained_with(folder: JobFolder) -> dict[str, Any]:
    """The solver and batch a model job ran with: what training its snapshot further starts from."""
    if not (folder.solver_file).is_file() or not (folder.train_val_file).is_file():
        return {"solver": DEFAULT_SOLVER, "batch": 1}
    return {"solver": _solver_fields(read_solver(folder.solver_file)),
            "batch": _train_batch(read_net(folder.train_val_file))}


def _snapshot_choices() -> list[dict[str, Any]]:
    models = []
    for row in _recent("model"):
        folder = services().scheduler.folder(row["id"])
        snapshots = [snap.iteration for snap in folder.snapshots()]
        if snapshots:
            models.append({"id": row["id"], "name": row["name"], "snapshots": snapshots,
                           "dataset": folder.spec().params.get("dataset"), **_trained_with(folder)})
    return models


def form_values(request: dict[str, Any]) -> dict[str, Any]:
    """A saved request as the form's inputs show it: a list (a sweep, step values) as "a,b"."""
    return {key: ",".join(map(str, value)) if isinstance(value, list) else value
            for key, value in request.items()}


def _clone_values(job_id: str) -> dict[str, Any]:
    _, folder = page_job(job_id, "model")
    spec = folder.spec()
    network = spec.params.get("network", {})
    values = {**form_values(spec.params.get("request", {})), "name": f"{spec.name} (clone)",
              "group": spec.group, "notes": spec.notes}
    if network.get("kind") == "prototxt":
        values["network_prototxt"] = network["text"]
    return values


@pages.get("/models/new")
def new_model():
    """The form. ?dataset=, ?network_job=&network_snapshot=, ?pretrained= preselect; ?clone=ID fills
    it with that model job's request."""
    values = _clone_values(request.args["clone"]) if request.args.get("clone") else {}
    for name in ("dataset", "network_job", "network_snapshot", "pretrained"):
        values.setdefault(name, request.args.get(name))
    models = _snapshot_choices()
    further = next((model for model in models if model["id"] == values["network_job"]), None)
    if further and not values["dataset"]:
        values["dataset"] = further["dataset"]  # train further on the model's own dataset
    choices = {"datasets": _dataset_choices(), "networks": _network_choices(), "models": models,
               "pretrained": [row for row in _recent("pretrained") if row["status"] == Status.DONE],
               "gpus": list(services().config.gpus or []), "cores": os.cpu_count() or 1,
               "solver_names": SOLVER_NAMES, "default_solver": DEFAULT_SOLVER, "balances": BALANCES,
               "schedules": PIPELINE_SCHEDULES}
    # Which policies read each policy-specific field: the form shows a field only for them.
    policies_using = {field: " ".join(policy for policy, needed in POLICY_FIELDS.items() if field in needed)
                      for field in ("gamma", "power", "stepsize", "stepvalue")}
    return render_template("models/new.html", values=values, choices=choices, solver_types=SOLVER_TYPES,
                           lr_policies=POLICIES, policies_using=policies_using,
                           amp_modes=(NO_AMP, *AMP_MODES))


def _dataset_info(folder: JobFolder, dataset_id: str | None) -> dict[str, Any] | None:
    """The job's own dataset.json copy, else its dataset job's."""
    info = read_json_if_present(folder.dataset_info_file)
    if info is None and dataset_id and services().index.get(dataset_id):
        info = dataset_job_info(services().scheduler.folder(dataset_id))
    return info


def _class_info(info: dict[str, Any] | None) -> dict[str, Any] | None:
    """Class names and palette (a colorization dataset has none)."""
    return None if info is None else {"classes": info.get("classes", []), "palette": info.get("palette", [])}


def _max_iter(folder: JobFolder) -> int | None:
    """The run's length, once its solver is written: the job's progress times it is its iteration."""
    solver = folder.solver_file
    return read_solver(solver).max_iter if solver.is_file() else None


EFFECTIVE_SOLVER = ("type", "base_lr", "lr_policy", "momentum", "momentum2", "weight_decay", "max_iter",
                    "iter_size", "test_interval", "test_iter", "snapshot", "display", "average_loss",
                    "clip_gradients", "random_seed")
UNSET_MEANS_OFF = ("clip_gradients", "random_seed")  # Caffe's -1: no clipping, a random seed


def effective_solver(solver_file: Path) -> list[tuple[str, Any]] | None:
    """The solver the job trains with (written before its first iteration), every field that shapes
    the run with its value, defaults included; None before the job wrote it."""
    if not solver_file.is_file():
        return None
    solver = read_solver(solver_file)
    names = []
    for name in EFFECTIVE_SOLVER:
        if (name == "momentum2" and solver.type != "Adam") or (name in UNSET_MEANS_OFF
                                                              and not solver.HasField(name)):
            continue
        names.append(name)
        if name == "lr_policy":
            names.extend(POLICY_FIELDS.get(solver.lr_policy, ()))
    return [(name, _field_text(solver, name)) for name in names]


def _field_text(solver: caffe_pb2.SolverParameter, name: str) -> Any:
    value = getattr(solver, name)
    return ", ".join(map(str, value)) if name in ("test_iter", "stepvalue") else _shown(value)


@pages.get("/models/<job_id>")
def model(job_id: str):
    row, folder = page_job(job_id, "model")
    spec = folder.spec()
    state = folder.state()
    dataset_id = spec.params.get("dataset")
    log, log_end = log_tail(folder)
    info = _dataset_info(folder, dataset_id)
    return render_template("models/model.html", row=row, spec=spec, state=state,
                           solver=effective_solver(folder.solver_file),
                           timeline=job_timeline(state, time.time()),
                           dataset=services().index.get(dataset_id) if dataset_id else None,
                           snapshots=folder.snapshots(), log=log, log_end=log_end, page_of_kind=PAGE_OF_KIND,
                           has_network=folder.network_file.is_file(),
                           class_info=_class_info(info), task=task_of(info or {}),
                           max_iter=_max_iter(folder),
                           ranks=read_json_if_present(folder.ranks_file),
                           pipeline=read_json_if_present(folder.pipeline_file))


@pages.get("/models/<job_id>/snapshots")
def snapshots_fragment(job_id: str):
    row, folder = page_job(job_id, "model")
    return render_template("models/_snapshots.html", row=row, snapshots=folder.snapshots())


@pages.get("/pretrained/new")
def new_pretrained():
    """Upload a trained model: deploy prototxt, .caffemodel and class names (checked before queueing)."""
    return render_template("models/pretrained_new.html")


@pages.get("/pretrained/<job_id>")
def pretrained(job_id: str):
    row, folder = page_job(job_id, "pretrained")
    log, log_end = log_tail(folder)
    files = sorted(path.name for path in folder.path.iterdir()
                   if path.suffix in PRETRAINED_SUFFIXES and path.name not in JOB_FILES and path.is_file())
    deploy = folder.deploy_file
    classifier = deploy.is_file() and any(layer.type == "InnerProduct" for layer in read_net(deploy).layer)
    spec, state = folder.spec(), folder.state()
    # A store import that failed may succeed from a copy of the weights the user has (no internet).
    local_copy = spec.params.get("source") == "store" and state.status == Status.FAILED
    return render_template("models/pretrained.html", row=row, spec=spec, state=state,
                           info=_class_info(_dataset_info(folder, None)), files=files, log=log,
                           log_end=log_end,
                           classifier=classifier, networks=[network.name for network in list_networks()],
                           local_copy=local_copy, roots=[str(root) for root in services().config.data_roots])
