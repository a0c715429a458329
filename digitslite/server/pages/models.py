"""Model pages: the New model form (network tabs, the custom-network editor, solver fields with a
learning-rate preview), a model's page (live charts over SSE, per-class IoU, usage, snapshots,
publishing, log) and a pretrained model's page. Their JSON and SVG helpers are in model_helpers."""
import os
from pathlib import Path
from typing import Any

from flask import render_template, request

from digitslite.caffe.prototxt import filter_net, read_net
from digitslite.engine.choices import AMP_MODES, DEFAULT_SOLVER, SOLVER_TYPES
from digitslite.engine.launch import RANKS_FILE
from digitslite.engine.lr_policy import POLICIES, POLICY_FIELDS
from digitslite.jobs.index import JobFilter
from digitslite.jobs.model import RESUMABLE, Status
from digitslite.jobs.runners.names import DATASET_INFO_FILE, DEPLOY_FILE, NETWORK_FILE
from digitslite.networks import list_networks, load_network, load_solver
from digitslite.server.create_model import SOLVER_NAMES
from digitslite.server.pages.blueprint import pages
from digitslite.server.pages.jobfiles import dataset_job_info, log_tail, read_json_if_present
from digitslite.server.pages.view import PAGE_OF_KIND, page_job
from digitslite.server.schemas.requests import NO_AMP
from digitslite.server.services import services

CHOICES_SHOWN = 100  # datasets, models and pretrained jobs offered by the form
SOLVER_DEFAULTS = ("type", "base_lr", "lr_policy", "gamma", "power", "stepsize", "momentum", "momentum2",
                   "weight_decay", "max_iter", "test_interval", "snapshot", "display")
DEFAULT_CLASSES = 2  # the class count a network is checked with when no dataset is chosen
PRETRAINED_SUFFIXES = (".prototxt", ".caffemodel", ".json", ".txt")
JOB_FILES = ("job.json", "state.json", "log.txt")


def _recent(kind: str, per_page: int = CHOICES_SHOWN) -> list[dict[str, Any]]:
    return services().index.list(JobFilter(kind=kind), per_page=per_page)[0]


def dataset_facts(row: dict[str, Any]) -> dict[str, Any]:
    """What the form's checks need to know of a dataset: class count, training pairs, C,H,W."""
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


def _network_choices() -> list[dict[str, Any]]:
    """The standard networks with their default solver and training batch size."""
    networks = []
    for network in list_networks():
        solver = load_solver(network.name)
        train = filter_net(load_network(network.name, DEFAULT_CLASSES), phase="train")
        batch = next((layer.data_param.batch_size for layer in train.layer if layer.type == "Data"), 1)
        defaults = {name: _shown(getattr(solver, name)) for name in SOLVER_DEFAULTS if solver.HasField(name)}
        if solver.stepvalue:
            defaults["stepvalue"] = ",".join(map(str, solver.stepvalue))
        title = network.title.removeprefix(f"{network.name}:").strip()
        networks.append({"name": network.name, "title": title, "batch": batch, "solver": defaults})
    return networks


def _snapshot_choices() -> list[dict[str, Any]]:
    models = []
    for row in _recent("model"):
        snapshots = [snap.iteration for snap in services().scheduler.folder(row["id"]).snapshots()]
        if snapshots:
            models.append({"id": row["id"], "name": row["name"], "snapshots": snapshots})
    return models


def _clone_values(job_id: str) -> dict[str, Any]:
    _, folder = page_job(job_id, "model")
    spec = folder.spec()
    network = spec.params.get("network", {})
    values = {**spec.params.get("request", {}), "name": f"{spec.name} (clone)", "group": spec.group,
              "notes": spec.notes}
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
    choices = {"datasets": _dataset_choices(), "networks": _network_choices(),
               "models": _snapshot_choices(),
               "pretrained": [row for row in _recent("pretrained") if row["status"] == Status.DONE],
               "gpus": list(services().config.gpus or []), "cores": os.cpu_count() or 1,
               "solver_names": SOLVER_NAMES, "default_solver": DEFAULT_SOLVER}
    # Which policies read each policy-specific field: the form shows a field only for them.
    policies_using = {field: " ".join(policy for policy, needed in POLICY_FIELDS.items() if field in needed)
                      for field in ("gamma", "power", "stepsize", "stepvalue")}
    return render_template("models/new.html", values=values, choices=choices, solver_types=SOLVER_TYPES,
                           lr_policies=POLICIES, policies_using=policies_using,
                           amp_modes=(NO_AMP, *AMP_MODES))


def _dataset_info(folder_path: Path, dataset_id: str | None) -> dict[str, Any] | None:
    """The job's own dataset.json copy, else its dataset job's."""
    info = read_json_if_present(folder_path / DATASET_INFO_FILE)
    if info is None and dataset_id and services().index.get(dataset_id):
        info = dataset_job_info(services().scheduler.folder(dataset_id))
    return info


def _class_info(info: dict[str, Any] | None) -> dict[str, Any] | None:
    """Class names and palette (a colorization dataset has none)."""
    return None if info is None else {"classes": info.get("classes", []), "palette": info.get("palette", [])}


@pages.get("/models/<job_id>")
def model(job_id: str):
    row, folder = page_job(job_id, "model")
    spec = folder.spec()
    dataset_id = spec.params.get("dataset")
    log, log_end = log_tail(folder)
    info = _dataset_info(folder.path, dataset_id)
    return render_template("models/model.html", row=row, spec=spec, state=folder.state(),
                           dataset=services().index.get(dataset_id) if dataset_id else None,
                           snapshots=folder.snapshots(), log=log, log_end=log_end, page_of_kind=PAGE_OF_KIND,
                           has_network=(folder.path / NETWORK_FILE).is_file(),
                           class_info=_class_info(info), task=(info or {}).get("task", "segmentation"),
                           ranks=read_json_if_present(folder.path / RANKS_FILE))


@pages.get("/models/<job_id>/snapshots")
def snapshots_fragment(job_id: str):
    row, folder = page_job(job_id, "model")
    return render_template("models/_snapshots.html", row=row, snapshots=folder.snapshots())


@pages.get("/pretrained/<job_id>")
def pretrained(job_id: str):
    row, folder = page_job(job_id, "pretrained")
    log, log_end = log_tail(folder)
    files = sorted(path.name for path in folder.path.iterdir()
                   if path.suffix in PRETRAINED_SUFFIXES and path.name not in JOB_FILES and path.is_file())
    deploy = folder.path / DEPLOY_FILE
    classifier = deploy.is_file() and any(layer.type == "InnerProduct" for layer in read_net(deploy).layer)
    return render_template("models/pretrained.html", row=row, spec=folder.spec(), state=folder.state(),
                           info=_class_info(_dataset_info(folder.path, None)), files=files, log=log,
                           log_end=log_end,
                           classifier=classifier, networks=[network.name for network in list_networks()])
