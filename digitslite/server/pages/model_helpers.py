"""The JSON and SVG helpers of the model pages: the custom-network editor's check, Crop fix and graph,
the standard networks' graphs and texts, the learning-rate preview, and a running job's usage."""
from typing import Literal

from flask import Response, jsonify, request

from digitslite.caffe import caffe_pb2
from digitslite.caffe.prototxt import filter_net, parse_net, read_net
from digitslite.caffe.template import fill_template
from digitslite.caffe.textedit import fix_crop_offsets
from digitslite.errors import UserError
from digitslite.jobs.model import Status
from digitslite.jobs.runners.names import NETWORK_FILE
from digitslite.networks import StandardNetwork, get_network, load_network
from digitslite.server.errors import ApiError
from digitslite.server.pages.blueprint import pages_api
from digitslite.server.pages.lrcurve import lr_curves
from digitslite.server.pages.models import DEFAULT_CLASSES, dataset_facts
from digitslite.server.pages.netcheck import SOURCE, check_network, fix_classes
from digitslite.server.pages.netgraph import network_svg
from digitslite.server.pages.usage import worker_usage
from digitslite.server.pages.view import page_job
from digitslite.server.schemas.body import Query
from digitslite.server.schemas.types import text
from digitslite.server.services import services

GRAPH_CACHE_S = 3600


Prototxt = text(5_000_000)


class EditorText(Query):
    text: Prototxt = ""


class ClassFix(Query):
    to: Literal["count", "template"] = "count"


def _editor_fields() -> tuple[str, int, dict | None]:
    """The editor's text, the class count it is read with, and the chosen dataset's facts (if any)."""
    text = EditorText.parse(request.form.to_dict()).text
    row = services().index.get(request.form.get("dataset", ""))
    dataset = dataset_facts(row) if row and row["kind"] == "dataset" else None
    return text, (dataset or {}).get("classes") or DEFAULT_CLASSES, dataset


@pages_api.post("/net-check")
def net_check():
    text, classes, dataset = _editor_fields()
    return jsonify(check_network(text, classes, dataset))


@pages_api.post("/net-fix")
def net_fix():
    text, classes, _ = _editor_fields()
    return jsonify({"text": fix_crop_offsets(text, SOURCE, classes)[0]})


@pages_api.post("/net-fix-classes")
def net_fix_classes():
    """Set the flagged classifier layers' num_output to the dataset's class count, or {{num_classes}}."""
    text, classes, dataset = _editor_fields()
    to = ClassFix.parse(request.form.to_dict()).to
    return jsonify({"text": fix_classes(text, classes, dataset, to == "template")})


def _svg(net: caffe_pb2.NetParameter) -> Response:
    return Response(network_svg(filter_net(net, phase="train")), mimetype="image/svg+xml")


@pages_api.post("/net-graph")
def net_graph():
    """The graph of the editor's text (TRAIN phase)."""
    text, classes, _ = _editor_fields()
    return _svg(parse_net(fill_template(text, classes, SOURCE), SOURCE))


def _standard(name: str) -> StandardNetwork:
    try:
        return get_network(name)
    except UserError as exc:
        raise ApiError(404, str(exc)) from None


@pages_api.get("/networks/<name>/graph.svg")
def standard_network_graph(name: str):
    response = _svg(load_network(_standard(name).name, DEFAULT_CLASSES))
    response.cache_control.max_age = GRAPH_CACHE_S
    return response


@pages_api.get("/networks/<name>/prototxt")
def standard_network_text(name: str):
    """The network's text as shipped ({{num_classes}} kept), for "Customize this network"."""
    return Response(_standard(name).network_file.read_text(), mimetype="text/plain")


@pages_api.get("/models/<job_id>/graph.svg")
def model_graph(job_id: str):
    _, folder = page_job(job_id, "model")
    if not (folder.path / NETWORK_FILE).is_file():
        raise ApiError(404, f"model job {job_id} has not written its network yet")
    return _svg(read_net(folder.path / NETWORK_FILE))


@pages_api.get("/lr-curve")
def lr_curve():
    return jsonify({"curves": lr_curves(request.args.to_dict())})


@pages_api.get("/jobs/<job_id>/usage")
def job_usage(job_id: str):
    _, folder = page_job(job_id)
    state = folder.state()
    running = state.status in (Status.STARTING, Status.RUNNING)
    return jsonify(worker_usage(state.pid if running else None, state.gpus if running else []))
