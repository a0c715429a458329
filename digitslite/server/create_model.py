"""POST /api/v1/models: a training job (or, for lists of learning rates or batch sizes, a sweep of them).

The network comes from exactly one of: `network` (a standard network's name), `network_prototxt`
(an all-in-one prototxt, checked here so a typo is a 422 with its line and column), `network_job`
(a previous model job's network and snapshot) or `pretrained` (a pretrained job). `weights_job`
optionally starts a standard or custom network from other weights.
"""
import itertools
from typing import Any

from flask import Blueprint, jsonify

from digitslite.caffe.prototxt import parse_net
from digitslite.errors import UserError
from digitslite.jobs.model import RESUMABLE, JobSpec
from digitslite.networks import fill_template, list_networks
from digitslite.server.auth import current_identity
from digitslite.server.create_common import (
    COMMON_FIELDS,
    GPU_FIELDS,
    CreateContext,
    gpu_request,
    job_of_kind,
    new_spec,
    request_fields,
    snapshot_ref,
)
from digitslite.server.errors import ApiError
from digitslite.server.fields import Fields
from digitslite.server.render import job_summary
from digitslite.server.scale_out import SCALE_OUT_FIELDS, scale_out_request
from digitslite.server.services import services

models_api = Blueprint("models_api", __name__)

SOLVER_TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")
# Each learning-rate policy and the fields it needs (Caffe has no defaults for them).
LR_POLICIES = {"fixed": (), "step": ("gamma", "stepsize"), "multistep": ("gamma", "stepvalue"),
               "exp": ("gamma",), "inv": ("gamma", "power"), "poly": ("power",),
               "sigmoid": ("gamma", "stepsize")}
AMP_MODES = ("none", "fp16", "bf16")
NETWORK_FIELDS = ("network", "network_prototxt", "network_job", "pretrained")
SOLVER_FIELDS = ("solver_type", "base_lr", "lr_policy", "gamma", "power", "stepsize", "stepvalue", "momentum",
                 "momentum2", "delta", "rms_decay", "weight_decay", "max_iter", "epochs", "batch_size",
                 "iter_size", "test_interval", "snapshot_interval", "display", "seed")
KNOWN_FIELDS = (*COMMON_FIELDS, *GPU_FIELDS, *NETWORK_FIELDS, *SOLVER_FIELDS, *SCALE_OUT_FIELDS, "dataset",
                "network_snapshot", "weights_job", "weights_snapshot", "amp", "channels_last", "compile")
MAX_SWEEP = 100


def _network(fields: Fields) -> dict[str, Any]:
    given = [name for name in NETWORK_FIELDS if fields.has(name)]
    if len(given) != 1:
        raise ApiError(422, "give exactly one network source: network (a standard network), "
                            f"network_prototxt, network_job or pretrained (got {', '.join(given) or 'none'})",
                       "network")
    source = given[0]
    if source == "network":
        names = [network.name for network in list_networks()]
        name = fields.choice("network", names)
        return {"kind": "standard", "name": name}
    if source == "network_prototxt":
        text = fields.text("network_prototxt", max_length=5_000_000)
        try:
            parse_net(fill_template(text, 2), source="network_prototxt")
        except UserError as exc:
            raise ApiError(422, str(exc), "network_prototxt") from None
        return {"kind": "prototxt", "text": text}
    if source == "pretrained":
        return snapshot_ref(fields.text("pretrained"), None, "pretrained")
    iteration = fields.integer("network_snapshot", minimum=0)
    return snapshot_ref(fields.text("network_job"), iteration, "network_job")


def _solver(fields: Fields) -> dict[str, Any]:
    """The solver fields as the runner applies them (Caffe's names); lengths stay in epochs or iterations."""
    policy = fields.choice("lr_policy", LR_POLICIES)
    for needed in LR_POLICIES.get(policy, ()):
        if not fields.has(needed):
            raise ApiError(422, f"{needed} is required with lr_policy {policy}", needed)
    if fields.has("max_iter") and fields.has("epochs"):
        raise ApiError(422, "give either max_iter or epochs, not both", "epochs")
    return {
        "type": fields.choice("solver_type", SOLVER_TYPES), "lr_policy": policy,
        "gamma": fields.number("gamma", positive=True), "power": fields.number("power", minimum=0),
        "stepsize": fields.integer("stepsize", minimum=1),
        "stepvalue": fields.integers("stepvalue", minimum=1),
        "momentum": fields.number("momentum", minimum=0, maximum=1),
        "momentum2": fields.number("momentum2", minimum=0, maximum=1),
        "delta": fields.number("delta", positive=True),
        "rms_decay": fields.number("rms_decay", minimum=0, maximum=1),
        "weight_decay": fields.number("weight_decay", minimum=0),
        "max_iter": fields.integer("max_iter", minimum=1), "epochs": fields.integer("epochs", minimum=1),
        "iter_size": fields.integer("iter_size", minimum=1),
        "test_interval": fields.integer("test_interval", minimum=1),
        "snapshot": fields.integer("snapshot_interval", minimum=1),
        "display": fields.integer("display", minimum=0), "random_seed": fields.integer("seed", minimum=0),
    }


def plan_model(fields: Fields, ctx: CreateContext) -> list[tuple[JobSpec, None]]:
    fields.reject_unknown(KNOWN_FIELDS)
    fields.required("dataset")
    dataset_id = fields.text("dataset")
    dataset = job_of_kind(dataset_id, "dataset", "dataset")
    dataset_status = dataset.state().status
    if dataset_status in RESUMABLE:
        raise ApiError(422, f"dataset: job {dataset_id} is {dataset_status}; resume or recreate it first",
                       "dataset")
    network = _network(fields)
    weights = None
    if fields.has("weights_job"):
        if network["kind"] not in ("standard", "prototxt"):
            raise ApiError(422, "weights_job goes with network or network_prototxt; network_job and "
                                "pretrained bring their own weights", "weights_job")
        weights = snapshot_ref(fields.text("weights_job"), fields.integer("weights_snapshot", minimum=0),
                                "weights_job")
    solver = _solver(fields)
    amp = fields.choice("amp", AMP_MODES, "none")
    speed = {"amp": None if amp == "none" else amp, "channels_last": fields.boolean("channels_last"),
             "compile": fields.boolean("compile")}
    gpus = gpu_request(fields, ctx.config)
    scale_out = scale_out_request(fields, gpus)
    rates = fields.numbers("base_lr", positive=True) or [None]
    batches = fields.integers("batch_size", minimum=1) or [None]
    combinations = len(rates) * len(batches)
    if combinations > MAX_SWEEP:
        raise ApiError(422, f"the sweep makes {combinations} jobs; at most {MAX_SWEEP}", "base_lr")
    sweep = combinations > 1
    base_request = {name: fields.raw(name) for name in KNOWN_FIELDS
                    if name not in COMMON_FIELDS and fields.raw(name) is not None}
    name = fields.text("name", "model", max_length=200)
    group = fields.text("group", name if sweep else "", max_length=200)
    used = [job["job"] for job in (network, weights) if job and "job" in job]
    jobs = []
    for rate, batch in itertools.product(rates, batches):
        varied = {"base_lr": rate, "batch_size": batch}
        suffix = ", ".join(f"{key}={value:g}" for key, value in varied.items() if value is not None)
        job_fields = Fields({**{key: fields.raw(key) for key in COMMON_FIELDS}, "group": group,
                             "name": f"{name} [{suffix}]" if sweep else name})
        chosen = {key: value for key, value in varied.items() if value is not None}
        params = {"request": base_request | chosen,
                  "dataset": dataset_id, "network": network, "weights": weights,
                  "solver": solver | varied, "speed": speed, "scale_out": scale_out}
        jobs.append((new_spec("model", job_fields, ctx, params, default_name=name,
                              depends_on=[dataset_id, *used], waits_for=[dataset_id], gpus=gpus), None))
    return jobs


@models_api.post("/models")
def create_model_job():
    jobs = plan_model(request_fields(), CreateContext(current_identity(), services().config))
    folders = services().scheduler.submit(jobs)
    return jsonify({"jobs": [job_summary(services().index.get(folder.id)) for folder in folders]}), 201
