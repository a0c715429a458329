"""POST /api/v1/models: a training job (or, for lists of learning rates or batch sizes, a sweep of them).

The network comes from exactly one of: `network` (a standard network's name), `network_prototxt`
(an all-in-one prototxt, checked here so a typo is a 422 with its line and column), `network_job`
(a previous model job's network and snapshot) or `pretrained` (a pretrained job). `weights_job`
optionally starts a standard or custom network from other weights.
"""
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify

from digitslite.caffe.prototxt import parse_net
from digitslite.caffe.template import fill_template
from digitslite.errors import UserError
from digitslite.jobs.job import RESUMABLE, JobSpec
from digitslite.networks import list_networks
from digitslite.server.auth import current_identity
from digitslite.server.create_common import (
    COMMON_FIELDS,
    CreateContext,
    gpu_request,
    job_of_kind,
    new_spec,
    request_values,
    snapshot_ref,
)
from digitslite.server.errors import ApiError
from digitslite.server.model_checks import check_memory, check_prototxt, dataset_image_shape
from digitslite.server.paths import check_named_paths
from digitslite.server.render import job_summary
from digitslite.server.scale_out import cpu_slots, scale_out_request
from digitslite.server.schemas.openapi import operation
from digitslite.server.schemas.requests import NETWORK_SOURCES, NO_AMP, ModelRequest
from digitslite.server.schemas.responses import Created
from digitslite.server.services import services
from digitslite.tasks import task_of

models_api = Blueprint("models_api", __name__)

# Request field -> the solver field the runner sets (Caffe's names) where they differ.
SOLVER_NAMES = {"solver_type": "type", "snapshot_interval": "snapshot", "seed": "random_seed"}
SOLVER_FIELDS = ("solver_type", "lr_policy", "gamma", "power", "stepsize", "stepvalue", "momentum",
                 "momentum2", "delta", "rms_decay", "weight_decay", "max_iter", "epochs", "iter_size",
                 "test_interval", "snapshot_interval", "display", "seed")
MAX_SWEEP = 100


def _network(body: ModelRequest, roots: tuple[Path, ...],
             image_shape: tuple[int, int, int]) -> dict[str, Any]:
    source = next(name for name in NETWORK_SOURCES if getattr(body, name) is not None)
    if source == "network":
        names = [network.name for network in list_networks()]
        if body.network not in names:
            raise ApiError(422, f"network: {body.network!r} is not one of {', '.join(names)}", "network")
        return {"kind": "standard", "name": body.network}
    if source == "network_prototxt":
        try:
            text = fill_template(body.network_prototxt, 2, "network_prototxt")
            net = parse_net(text, source="network_prototxt")
        except UserError as exc:
            raise ApiError(422, str(exc), "network_prototxt") from None
        check_named_paths(net, roots, "network_prototxt")
        check_prototxt(body.network_prototxt, image_shape)
        return {"kind": "prototxt", "text": body.network_prototxt}
    if source == "pretrained":
        return snapshot_ref(body.pretrained, None, "pretrained")
    return snapshot_ref(body.network_job, body.network_snapshot, "network_job")


def _solver(body: ModelRequest) -> dict[str, Any]:
    """The solver fields as the runner applies them (Caffe's names); lengths stay in epochs or iterations."""
    return {SOLVER_NAMES.get(name, name): getattr(body, name) for name in SOLVER_FIELDS}


def plan_model(values: Mapping[str, Any], ctx: CreateContext) -> list[tuple[JobSpec, None]]:
    body = ModelRequest.parse(values)
    dataset_id = body.dataset
    dataset = job_of_kind(dataset_id, "dataset", "dataset")
    dataset_status = dataset.state().status
    if dataset_status in RESUMABLE:
        raise ApiError(422, f"dataset: job {dataset_id} is {dataset_status}; resume or recreate it first",
                       "dataset")
    image_shape = dataset_image_shape(dataset)
    network = _network(body, ctx.config.data_roots, image_shape)
    weights = None
    if body.weights_job is not None:
        weights = snapshot_ref(body.weights_job, body.weights_snapshot, "weights_job")
    speed = {"amp": None if body.amp == NO_AMP else body.amp, "channels_last": body.channels_last,
             "compile": body.compile}
    gpus = gpu_request(body, ctx.config)
    scale_out = scale_out_request(body, gpus)
    rates = body.base_lr or [None]
    batches = body.batch_size or [None]
    check_memory(network, max(batches, key=lambda batch: batch or 0), image_shape)
    combinations = len(rates) * len(batches)
    if combinations > MAX_SWEEP:
        raise ApiError(422, f"the sweep makes {combinations} jobs; at most {MAX_SWEEP}", "base_lr")
    sweep = combinations > 1
    base_request = body.given(exclude=COMMON_FIELDS)
    name = body.name or "model"
    group = body.group or (name if sweep else "")
    used = [job["job"] for job in (network, weights) if job and "job" in job]
    jobs = []
    for rate, batch in itertools.product(rates, batches):
        varied = {"base_lr": rate, "batch_size": batch}
        suffix = ", ".join(f"{key}={value:g}" for key, value in varied.items() if value is not None)
        chosen = {key: value for key, value in varied.items() if value is not None}
        params = {"request": base_request | chosen, "task": task_of(dataset.spec().params).name,
                  "dataset": dataset_id, "network": network, "weights": weights,
                  "solver": _solver(body) | varied, "speed": speed, "scale_out": scale_out}
        jobs.append((new_spec("model", body, ctx, params, default_name=name,
                              name=f"{name} [{suffix}]" if sweep else name, group=group,
                              depends_on=[dataset_id, *used], waits_for=[dataset_id], gpus=gpus,
                              cpu_slots=cpu_slots(scale_out)), None))
    return jobs


@models_api.post("/models")
@operation({201: Created}, errors=(401, 422), body=ModelRequest)
def create_model_job():
    """Train a model; lists in base_lr or batch_size make a sweep of jobs"""
    jobs = plan_model(request_values(), CreateContext(current_identity(), services().config))
    folders = services().scheduler.submit(jobs)
    return jsonify({"jobs": [job_summary(services().index.get(folder.id)) for folder in folders]}), 201
