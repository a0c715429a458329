"""GET /api/v1/openapi.json: the API described as OpenAPI 3.1, from one table of operations.

A test checks that this table and the server's routes name the same operations, so the document
cannot drift from the code unnoticed.
"""

from typing import Any

from flask import Blueprint, jsonify

from digitslite import __version__
from digitslite.jobs.model import KINDS, Status

openapi_api = Blueprint("openapi_api", __name__)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, **({"required": list(required)} if required else {})}


STRING, INTEGER, NUMBER, BOOLEAN = (
    {"type": "string"},
    {"type": "integer"},
    {"type": "number"},
    {"type": "boolean"},
)
NULLABLE_STRING = {"type": ["string", "null"]}
NUMBERS = {
    "oneOf": [NUMBER, {"type": "array", "items": NUMBER}, STRING],
    "description": "one value, a list, or a comma-separated string: several make a sweep",
}
INTEGERS = {
    "oneOf": [INTEGER, {"type": "array", "items": INTEGER}, STRING],
    "description": "one value, a list, or a comma-separated string: several make a sweep",
}
COMMON = {
    "name": STRING,
    "group": STRING,
    "notes": STRING,
    "priority": {"type": "integer", "minimum": -100, "maximum": 100, "description": "higher runs first"},
}
GPUS = {
    "gpus": {"type": "integer", "minimum": 0, "description": "how many GPUs (any free ones); 0: a CPU slot"},
    "gpu_ids": {"oneOf": [{"type": "array", "items": STRING}, STRING], "description": "exactly these GPUs"},
}

SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {"error": _object({"message": STRING, "field": NULLABLE_STRING}, ("message", "field"))}, ("error",)
    ),
    "JobSummary": _object(
        {
            "id": STRING,
            "kind": {"enum": list(KINDS)},
            "status": {"enum": [str(s) for s in Status]},
            "name": STRING,
            "owner": STRING,
            "group": STRING,
            "priority": INTEGER,
            "created": NUMBER,
            "updated": NUMBER,
            "progress": NUMBER,
            "message": STRING,
            "error": {},
            "depends_on": {"type": "array", "items": STRING},
            "links": {"type": "object", "additionalProperties": STRING},
        },
        ("id", "kind", "status"),
    ),
    "JobDetail": {
        "allOf": [
            _ref("JobSummary"),
            _object(
                {
                    "params": {"type": "object"},
                    "notes": STRING,
                    "gpus_requested": {},
                    "waits_for": {"type": "array"},
                    "dependents": {"type": "array", "items": STRING},
                    "abort_requested": BOOLEAN,
                    "run": {"type": "object"},
                    "history": {"type": "array", "items": _object({"status": STRING, "at": NUMBER})},
                    "transitions": INTEGER,
                    "snapshots": {
                        "type": "array",
                        "items": _object(
                            {"iteration": INTEGER, "weights": STRING, "solverstate": NULLABLE_STRING}
                        ),
                    },
                }
            ),
        ]
    },
    "JobList": _object(
        {
            "jobs": {"type": "array", "items": _ref("JobSummary")},
            "total": INTEGER,
            "page": INTEGER,
            "per_page": INTEGER,
            "pages": INTEGER,
        }
    ),
    "Created": _object({"jobs": {"type": "array", "items": _ref("JobSummary")}}),
    "DatasetRequest": _object(
        {
            **COMMON,
            "images": STRING,
            "labels": STRING,
            "val_images": STRING,
            "val_labels": STRING,
            "val_percent": INTEGER,
            "label_mode": {"enum": ["palette", "rgb", "index"]},
            "colormap": STRING,
            "classes": STRING,
            "nearest": BOOLEAN,
            "ignore_label": INTEGER,
            "encoding": {"enum": ["png", "jpg", "none"]},
            "resize": {"enum": ["none", "squash", "crop", "fill", "half_crop"]},
            "width": INTEGER,
            "height": INTEGER,
            "seed": INTEGER,
            "allow_empty_classes": BOOLEAN,
            "check": {"type": "boolean", "description": "validate before queueing (default true)"},
        }
    ),
    "ModelRequest": _object(
        {
            **COMMON,
            **GPUS,
            "dataset": STRING,
            "network": {"type": "string", "description": "a standard network of network_defs/"},
            "network_prototxt": STRING,
            "network_job": STRING,
            "network_snapshot": INTEGER,
            "pretrained": STRING,
            "weights_job": STRING,
            "weights_snapshot": INTEGER,
            "solver_type": {"enum": ["SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam"]},
            "base_lr": NUMBERS,
            "batch_size": INTEGERS,
            "lr_policy": {"enum": ["fixed", "step", "multistep", "exp", "inv", "poly", "sigmoid"]},
            "gamma": NUMBER,
            "power": NUMBER,
            "stepsize": INTEGER,
            "stepvalue": INTEGERS,
            "momentum": NUMBER,
            "momentum2": NUMBER,
            "delta": NUMBER,
            "rms_decay": NUMBER,
            "weight_decay": NUMBER,
            "max_iter": INTEGER,
            "epochs": INTEGER,
            "iter_size": INTEGER,
            "test_interval": INTEGER,
            "snapshot_interval": INTEGER,
            "display": INTEGER,
            "seed": INTEGER,
            "amp": {"enum": ["none", "fp16", "bf16"]},
            "channels_last": BOOLEAN,
            "compile": BOOLEAN,
            "ranks": {**INTEGER, "description": "data-parallel ranks on this node: the GPU count for a GPU "
                                                "job, CPU processes (gloo) otherwise"},
            "nnodes": {**INTEGER, "description": "nodes taking part (docs/SCALING.md)"},
            "node_rank": {**INTEGER, "description": "this node's number, 0 to nnodes-1"},
            "master": {**STRING, "description": "ADDR:PORT of node 0, required with several nodes"},
            "sync_batchnorm": BOOLEAN,
            "recompute": {**STRING, "description": "re-materialization: auto, layers per segment, or blob "
                                                   "names to cut after (docs/SCALING.md)"},
            "pipeline_stages": {**INTEGER, "description": "pipeline stages, one GPU or CPU slot each"},
            "micro_batches": {**INTEGER, "description": "batches per update through the pipeline"},
            "pipeline_cuts": {**STRING, "description": "blob names to cut after, comma-separated"},
            "pipeline_schedule": {"enum": ["gpipe", "1f1b"]},
        },
        ("dataset",),
    ),
    "InferenceRequest": _object(
        {
            **COMMON,
            **GPUS,
            "snapshot": INTEGER,
            "folder": STRING,
            "dataset": STRING,
            "limit": INTEGER,
            "images": {"type": "array", "items": {"type": "string", "format": "binary"}},
        }
    ),
    "PretrainedRequest": _object(
        {
            **COMMON,
            **{
                role: STRING
                for role in ("deploy", "weights", "network", "dataset_info", "classes", "colormap")
            },
            "archive": {"type": "string", "format": "binary"},
        }
    ),
    "StoreList": _object(
        {
            "stores": {
                "type": "array",
                "items": _object(
                    {
                        "url": {"type": "string", "description": "the `store` to give POST /store/import"},
                        "reachable": BOOLEAN,
                        "msg": STRING,
                        "error": {**NULLABLE_STRING, "description": "why the store could not be read"},
                        "models": {"type": "array", "items": _ref("StoreModel")},
                    }
                ),
            }
        }
    ),
    "StoreModel": _object(
        {
            "id": {"type": "string", "description": "the entry's folder: the `name` to import"},
            "name": STRING,
            "task": NULLABLE_STRING,
            "framework": NULLABLE_STRING,
            "classes": {"type": ["array", "null"], "items": STRING},
            "metrics": {"type": "object"},
            "size": {"type": ["integer", "null"], "description": "bytes to download"},
            "size_exact": {"type": "boolean", "description": "false: includes approximate sizes"},
            "weights": {"enum": ["included", "remote", "none"]},
            "source": NULLABLE_STRING,
            "license": NULLABLE_STRING,
            "note": NULLABLE_STRING,
            "error": {**NULLABLE_STRING, "description": "why the entry cannot be imported"},
        }
    ),
    "StoreImportRequest": _object(
        {
            "store": {
                "type": "string",
                "description": "a store GET /store/models lists, or a store folder inside the data roots",
            },
            "name": {"type": "string", "description": "the entry to import (a model's id in the listing)"},
            "group_upscores": {
                "type": "boolean",
                "description": "make ungrouped diagonal upsampling layers (fcn.berkeleyvision.org) "
                "grouped, as DIGITS' FCNs have them",
            },
            "weights_file": {
                "type": "string",
                "description": "a copy of the weights on the server, inside the data roots, used "
                "instead of downloading them (still verified)",
            },
            "job_name": {"type": "string", "description": "the pretrained job's name (default: the entry)"},
            **{key: COMMON[key] for key in ("group", "notes", "priority")},
        },
        ("store", "name"),
    ),
    "ConvolutionalizeRequest": _object(
        {
            **COMMON,
            "num_classes": {"type": "integer", "minimum": 1, "description": "the FCN's classes (default 21)"},
            "network": {"type": "string", "description": "the standard FCN to make (default fcn_alexnet)"},
        }
    ),
    "PublishRequest": _object(
        {
            "store_dir": {
                "type": "string",
                "description": "the store folder, inside the data roots (made if new)",
            },
            "name": {"type": "string", "description": "the entry's folder name"},
            "snapshot": {"type": "integer", "description": "iteration; default the newest"},
            "title": {"type": "string", "description": "display name; default the job's name"},
            "note": STRING,
            "license": STRING,
            "source": {"type": "string", "description": "where the model comes from; default the job"},
        },
        ("store_dir", "name"),
    ),
    "Published": _object(
        {
            "store_dir": STRING,
            "name": STRING,
            "info": {"type": "object", "description": "the entry's info.json, with a checksum per file"},
        }
    ),
    "System": _object(
        {
            "version": STRING,
            "gpus": {"type": "array"},
            "cpu_slots": INTEGER,
            "queue": {"type": "object"},
            "users": STRING,
            "you": STRING,
            "versions": {"type": "object"},
        }
    ),
}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): _json(_ref("Error"), "refused; the message says why and what to change") for code in codes
    }


def _job_id() -> dict[str, Any]:
    return {"name": "job_id", "in": "path", "required": True, "schema": STRING}


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "schema": schema,
        **({"description": description} if description else {}),
    }


def _body(schema: str, multipart: bool = True) -> dict[str, Any]:
    content = {"application/json": {"schema": _ref(schema)}}
    if multipart:
        content["multipart/form-data"] = {"schema": _ref(schema)}
    return {"requestBody": {"required": True, "content": content}}


# (path, method) -> operation; paths use OpenAPI's {name} form.
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("/jobs", "get"): {
        "summary": "List jobs, newest first",
        "parameters": [
            _query("kind", {"enum": list(KINDS)}),
            _query("status", {"enum": [str(s) for s in Status]}),
            _query("owner", STRING),
            _query("text", STRING, "substring of id, name, group or notes"),
            _query("page", INTEGER),
            _query("per_page", {"type": "integer", "maximum": 500}),
        ],
        "responses": {"200": _json(_ref("JobList"), "one page of jobs"), **_errors(401, 422)},
    },
    ("/jobs/{job_id}", "get"): {
        "summary": "One job in full",
        "parameters": [_job_id()],
        "responses": {"200": _json(_ref("JobDetail"), "the job"), **_errors(401, 404)},
    },
    ("/jobs/{job_id}", "delete"): {
        "summary": "Delete a job and its folder",
        "parameters": [_job_id(), _query("force", BOOLEAN, "also when other jobs use it or it runs")],
        "responses": {"204": {"description": "deleted"}, **_errors(401, 403, 404, 409)},
    },
    ("/jobs/{job_id}/metrics", "get"): {
        "summary": "Metric records (metrics.jsonl) after the first `after`",
        "parameters": [_job_id(), _query("after", INTEGER)],
        "responses": {
            "200": _json(_object({"metrics": {"type": "array"}, "next": INTEGER}), "new records"),
            **_errors(401, 404),
        },
    },
    ("/jobs/{job_id}/log", "get"): {
        "summary": "The job's log from byte `offset` (X-Next-Offset tells where to continue)",
        "parameters": [_job_id(), _query("offset", INTEGER)],
        "responses": {
            "200": {"description": "log text", "content": {"text/plain": {"schema": STRING}}},
            **_errors(401, 404),
        },
    },
    ("/jobs/{job_id}/events", "get"): {
        "summary": "Server-Sent Events: status, metrics, reset, snapshot, end",
        "parameters": [_job_id(), _query("after", STRING, "records already seen: a count, or a "
                                                          "metrics event's id FILE:COUNT (Last-Event-ID)")],
        "responses": {
            "200": {"description": "event stream", "content": {"text/event-stream": {"schema": STRING}}},
            **_errors(401, 404),
        },
    },
    ("/jobs/{job_id}/files/{name}", "get"): {
        "summary": "A file of the job's folder (inference outputs, results.json)",
        "parameters": [_job_id(), {"name": "name", "in": "path", "required": True, "schema": STRING}],
        "responses": {"200": {"description": "the file"}, **_errors(401, 404)},
    },
    ("/jobs/{job_id}/abort", "post"): {
        "summary": "Abort: SIGTERM (a model snapshots), SIGKILL after the grace period",
        "parameters": [_job_id()],
        "responses": {"202": _json(_ref("JobDetail"), "abort under way"), **_errors(401, 403, 404, 409)},
    },
    ("/jobs/{job_id}/resume", "post"): {
        "summary": "Queue an aborted, failed or interrupted job again (models continue from a snapshot)",
        "parameters": [_job_id()],
        "responses": {"202": _json(_ref("JobDetail"), "queued"), **_errors(401, 403, 404, 409)},
    },
    ("/jobs/{job_id}/clone", "post"): {
        "summary": "A new job with this one's parameters; the body's fields replace some of them",
        "parameters": [_job_id()],
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {"201": _json(_ref("Created"), "the new jobs"), **_errors(401, 403, 404, 422)},
    },
    ("/datasets", "post"): {
        "summary": "Create a dataset from server folders or an uploaded archive (field `archive`)",
        **_body("DatasetRequest"),
        "responses": {
            "201": _json(_ref("Created"), "queued"),
            "422": _json(
                {"allOf": [_ref("Error")]},
                "invalid; error.report holds the validation report when the folders have problems",
            ),
            **_errors(401, 403, 413),
        },
    },
    ("/models", "post"): {
        "summary": "Train a model; lists in base_lr or batch_size make a sweep of jobs",
        **_body("ModelRequest"),
        "responses": {"201": _json(_ref("Created"), "queued"), **_errors(401, 422)},
    },
    ("/models/{job_id}/infer", "post"): {
        "summary": "Run a model or pretrained job over images (an inference job, answered at once)",
        "parameters": [_job_id()],
        **_body("InferenceRequest"),
        "responses": {"202": _json(_ref("Created"), "queued"), **_errors(401, 403, 413, 422)},
    },
    ("/models/{job_id}/download", "get"): {
        "summary": "The model as tar.gz: prototxts, caffemodel, dataset.json, info.json",
        "parameters": [_job_id(), _query("snapshot", INTEGER, "iteration; default the newest")],
        "responses": {
            "200": {"description": "archive", "content": {"application/gzip": {"schema": STRING}}},
            **_errors(401, 404),
        },
    },
    ("/pretrained", "post"): {
        "summary": "Import weights with their deploy network (uploads, an archive, or server paths)",
        **_body("PretrainedRequest"),
        "responses": {"201": _json(_ref("Created"), "queued"), **_errors(401, 403, 413, 422)},
    },
    ("/store/models", "get"): {
        "summary": "The models of every store (the embedded one and DIGITSLITE_STORE_URLS); a store that "
        "cannot be read is listed with its error",
        "responses": {"200": _json(_ref("StoreList"), "the stores, in order"), **_errors(401)},
    },
    ("/store/import", "post"): {
        "summary": "Import a store entry as a pretrained job: every file's checksum verified, progress and "
        "log in the job",
        **_body("StoreImportRequest"),
        "responses": {"201": _json(_ref("Created"), "queued"), **_errors(401, 403, 422)},
    },
    ("/pretrained/{job_id}/convolutionalize", "post"): {
        "summary": "A new pretrained job with FCN initial weights made by net surgery from this pretrained "
        "classifier (e.g. bvlc_alexnet into fcn_alexnet)",
        "parameters": [_job_id()],
        **_body("ConvolutionalizeRequest"),
        "responses": {"201": _json(_ref("Created"), "queued"), **_errors(401, 422)},
    },
    ("/models/{job_id}/publish", "post"): {
        "summary": "Publish a snapshot of this model job as an entry of a store folder on the server",
        "parameters": [_job_id()],
        **_body("PublishRequest"),
        "responses": {"201": _json(_ref("Published"), "the entry"), **_errors(401, 403, 422)},
    },
    ("/system", "get"): {
        "summary": "GPUs, the queue, versions",
        "responses": {"200": _json(_ref("System"), "the server"), **_errors(401)},
    },
    ("/openapi.json", "get"): {
        "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3.1"}},
    },
}


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for (path, method), operation in OPERATIONS.items():
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "digitslite",
            "version": __version__,
            "description": "Jobs (datasets, models, inference, pretrained weights) of a digitslite server. "
            'Errors are {"error": {"message", "field"}}. With users, send '
            "'Authorization: Bearer TOKEN' (digitslite users token NAME).",
        },
        "servers": [{"url": "/api/v1"}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
        "paths": paths,
    }


@openapi_api.get("/openapi.json")
def openapi():
    return jsonify(document())
