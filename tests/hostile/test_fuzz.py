"""The bounded fuzz run: requests drawn from the OpenAPI document (every operation, its parameters and
body fields, with hostile values mixed in) against an in-process app. No answer may be a 5xx, and a
refused request may leave nothing behind in the jobs directory."""
import json
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile.conftest import dataset_body

# Streams never end by themselves; they are covered by their own tests.
SKIPPED = {("get", "/jobs/{job_id}/events")}
HOSTILE_TEXT = ["", "\ud800", "a\x00b", "\x1b[31m", "../../etc/passwd", "/etc/shadow", "/dev/zero", "%00",
                "\u00b2", "1" * 30, "x" * 300, "évêque", "<script>", "../", ".", "C:\\x", "~root"]
HOSTILE_NUMBERS = [0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**20, 1e308, 0.5, "\u00b2", "1e9", "NaN", True]


def _text(extra: list[str]) -> st.SearchStrategy:
    return st.one_of(st.text(max_size=20), st.sampled_from(HOSTILE_TEXT + extra))


def _value(schema: dict[str, Any], components: dict[str, Any], extra: list[str]) -> st.SearchStrategy:
    """Values that fit `schema` or nearly do, and now and then something of another type."""
    if "$ref" in schema:
        return _value(components[schema["$ref"].rsplit("/", 1)[1]], components, extra)
    kind = schema.get("type")
    if "enum" in schema:
        fitting = st.sampled_from([*schema["enum"], "bogus"])
    elif kind == "integer":
        fitting = st.one_of(st.integers(-5, 5000), st.sampled_from(HOSTILE_NUMBERS))
    elif kind == "number":
        fitting = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(HOSTILE_NUMBERS))
    elif kind == "boolean":
        fitting = st.one_of(st.booleans(), st.sampled_from(["yes", "2", ""]))
    elif kind == "array":
        fitting = st.lists(_value(schema.get("items", {}), components, extra), max_size=4)
    elif kind == "object" or "properties" in schema:
        fitting = _object(schema, components, extra)
    else:
        fitting = _text(extra)
    odd = st.one_of(st.none(), _text(extra), st.sampled_from(HOSTILE_NUMBERS), st.just({"a": [1]}))
    return st.one_of(fitting, fitting, fitting, odd)


def _object(schema: dict[str, Any], components: dict[str, Any], extra: list[str]) -> st.SearchStrategy:
    properties = schema.get("properties", {})
    known = st.fixed_dictionaries({}, optional={name: _value(part, components, extra)
                                                for name, part in properties.items()})
    unknown = st.dictionaries(_text([]), st.integers(), max_size=1)
    return st.builds(lambda fields, more: {**fields, **more}, known, st.one_of(st.just({}), unknown))


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, operation) for path, operations in doc["paths"].items()
            for method, operation in operations.items() if (method, path) not in SKIPPED]


def _leftovers(jobs_dir) -> set[str]:
    """Everything a request could leave in the jobs directory (the index's own files aside)."""
    own = ("index.sqlite", ".server")
    return {entry.name for entry in jobs_dir.iterdir() if not entry.name.startswith(own)}


class World(tuple):
    def __repr__(self) -> str:  # the document is long; the failing draw says what matters
        return "world"


@pytest.fixture
def world(app, client, demo, tmp_path):
    dataset = client.post("/api/v1/datasets", json=dataset_body(demo)).get_json()["jobs"][0]["id"]
    model = client.post("/api/v1/models", json={"dataset": dataset, "network": "fcn_tiny", "max_iter": 1})
    doc = client.get("/api/v1/openapi.json").get_json()
    ids = [dataset, model.get_json()["jobs"][0]["id"]]
    paths = [str(demo / folder) for folder in ("images", "labels", "val_images", "val_labels")]
    # Bodies that would be accepted, so that one drawn field at a time reaches past the first check.
    bases = {"/datasets": dataset_body(demo), "/models": {"dataset": dataset, "network": "fcn_tiny"}}
    return World((client, doc, ids + paths, tmp_path / "jobs", bases))


def _quoted(value: Any) -> str:
    """As a client sends it: UTF-8, percent-encoded (a lone surrogate as the bytes it would be)."""
    return urllib.parse.quote(str(value), safe="", errors="surrogatepass")


def _as_sent(value: Any) -> str:
    """A form value as the server decodes what a client sends (a lone surrogate arrives replaced)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


@st.composite
def api_requests(draw, doc: dict[str, Any], extra: list[str], bases: dict[str, dict[str, Any]]):
    method, path, operation = draw(st.sampled_from(_operations(doc)))
    components = doc["components"]["schemas"]
    url, query = path, {}
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            ids = st.sampled_from([*extra[:2], "job.json", "../state.json", "%00"])
            value = draw(st.one_of(ids, _text([])))
            url = url.replace("{" + parameter["name"] + "}", _quoted(value) or "x")
        elif draw(st.integers(0, 3)):  # most of the time
            query[parameter["name"]] = draw(_value(parameter.get("schema", {}), components, extra))
    body = None
    content = operation.get("requestBody", {}).get("content", {})
    if content:
        media = draw(st.sampled_from(sorted(content)))
        fields = draw(st.one_of(_value(content[media]["schema"], components, extra),
                                st.sampled_from([[], "text", 7])))
        if path in bases and isinstance(fields, dict) and draw(st.booleans()):
            fields = {**bases[path], **dict(list(fields.items())[:2])}
        body = (media, fields)
    query_string = "&".join(f"{_quoted(key)}={_quoted(value)}" for key, value in query.items())
    return method, "/api/v1" + url, query_string, body


@settings(max_examples=2000, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_no_request_from_the_api_document_is_a_5xx_or_leaves_a_refused_job(world, data):
    client, doc, extra, jobs_dir, bases = world
    method, url, query, body = data.draw(api_requests(doc, extra, bases))
    before = _leftovers(jobs_dir)
    kwargs: dict[str, Any] = {"query_string": query}
    if body is not None:
        media, fields = body
        if media == "application/json":
            kwargs.update(data=json.dumps(fields), content_type="application/json")
        elif isinstance(fields, dict):
            kwargs.update(data={_as_sent(key): _as_sent(value) for key, value in fields.items()},
                          content_type="multipart/form-data")
    response = client.open(url, method=method.upper(), **kwargs)
    assert response.status_code < 500, (method, url, query, body, response.get_data(as_text=True))
    if response.status_code >= 400:
        assert _leftovers(jobs_dir) == before, (method, url, query, body, response.status_code)
        assert response.is_json and response.get_json()["error"]["message"]
