"""GET /api/v1/openapi.json: the OpenAPI 3.1 document, generated from the application itself.

Paths and methods are the app's own routes under /api/v1; each view declares its request body,
query and answers with `operation`, and its docstring gives the summary. The schemas are pydantic's
JSON Schema (2020-12, OpenAPI 3.1's dialect) of the declarations in requests.py and responses.py, so
the document describes what the server validates, and a route without a declaration fails loudly.
"""
import http
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from digitslite import __version__
from digitslite.server.schemas.body import Body
from digitslite.server.schemas.responses import Error

API_PREFIX = "/api/v1"
REF = "#/components/schemas/{model}"
Answer = type[BaseModel] | str | None  # a JSON schema, another media type, or no content

openapi_api = Blueprint("openapi_api", __name__)


@dataclass(frozen=True)
class Operation:
    answers: dict[int, Answer]
    errors: tuple[int, ...] = ()
    body: type[Body] | dict[str, Any] | None = None  # a schema, or a free-form object described here
    files: tuple[str, ...] = ()  # multipart file fields read beside the body's fields
    query: type[Body] | None = None
    extra_query: dict[str, dict[str, Any]] = field(default_factory=dict)  # parameters read by hand


def operation(answers: dict[int, Answer], **details: Any) -> Callable:
    """Declare what a view of the JSON API reads and answers (see Operation)."""
    def declare(view: Callable) -> Callable:
        view.openapi = Operation(answers, **details)
        return view
    return declare


def _ref(model: type[BaseModel], models: set[type[BaseModel]]) -> dict[str, str]:
    models.add(model)
    return {"$ref": REF.format(model=model.__name__)}


def _answer(status: int, answer: Answer, models: set[type[BaseModel]]) -> dict[str, Any]:
    description = http.HTTPStatus(status).phrase
    if answer is None:
        return {"description": description}
    if isinstance(answer, str):
        return {"description": description, "content": {answer: {"schema": {"type": "string"}}}}
    return {"description": inspect.getdoc(answer) or description,
            "content": {"application/json": {"schema": _ref(answer, models)}}}


def _body(declared: type[Body] | dict[str, Any], files: tuple[str, ...],
          models: set[type[BaseModel]]) -> dict[str, Any]:
    if isinstance(declared, dict):
        return {"content": {"application/json": {"schema": declared}}}
    schema = _ref(declared, models)
    form = schema
    if files:
        binary = {"type": "array", "items": {"type": "string", "format": "binary"}}
        form = {"allOf": [schema, {"type": "object", "properties": dict.fromkeys(files, binary)}]}
    return {"required": True, "content": {"application/json": {"schema": schema},
                                          "multipart/form-data": {"schema": form}}}


def _parameters(arguments: set[str], op: Operation) -> list[dict[str, Any]]:
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in sorted(arguments)]
    query = op.query.model_json_schema()["properties"] if op.query else {}
    for name, schema in {**query, **op.extra_query}.items():
        parameters.append({"name": name, "in": "query", "schema": schema,
                           **({"description": schema["description"]} if "description" in schema else {})})
    return parameters


def _operation(view: Callable, arguments: set[str], models: set[type[BaseModel]]) -> dict[str, Any]:
    op: Operation | None = getattr(view, "openapi", None)
    if op is None:
        raise RuntimeError(f"API view {view.__module__}.{view.__name__} declares no operation (@operation)")
    summary, _, description = (inspect.getdoc(view) or "").partition("\n")
    described: dict[str, Any] = {"summary": summary, "operationId": view.__name__}
    if description.strip():
        described["description"] = description.strip()
    parameters = _parameters(arguments, op)
    if parameters:
        described["parameters"] = parameters
    if op.body is not None:
        described["requestBody"] = _body(op.body, op.files, models)
    responses = {str(status): _answer(status, answer, models) for status, answer in op.answers.items()}
    responses |= {str(status): _answer(status, Error, models) for status in op.errors}
    return {**described, "responses": responses}


def document(app: Flask) -> dict[str, Any]:
    models: set[type[BaseModel]] = set()
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        if not rule.rule.startswith(API_PREFIX + "/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule.removeprefix(API_PREFIX))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(app.view_functions[rule.endpoint],
                                                                    rule.arguments, models)
    ordered = sorted(models, key=lambda model: model.__name__)
    _, schemas = models_json_schema([(model, "validation") for model in ordered], ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "digitslite", "version": __version__,
                 "description": "Jobs (datasets, models, inference, pretrained weights) of a digitslite "
                                'server. Errors are {"error": {"message", "field"}}. With users, send '
                                "'Authorization: Bearer TOKEN' (digitslite users token NAME)."},
        "servers": [{"url": API_PREFIX}],
        "components": {"schemas": schemas.get("$defs", {}),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{}, {"bearer": []}],
        "paths": paths,
    }


@openapi_api.get("/openapi.json")
@operation({200: "application/json"})
def openapi():
    """This document"""
    return jsonify(document(current_app))
