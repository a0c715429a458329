"""Pretrained jobs: weights with their deploy network under fixed names; the files a request names."""
from pathlib import Path
from typing import Any

from digitslite.caffe import caffe_pb2
from digitslite.caffe.caffemodel import MatchReport, match_weights, read_caffemodel
from digitslite.caffe.netcheck import CheckOptions, check_net_text
from digitslite.caffe.paramshapes import param_shapes
from digitslite.caffe.prototxt import read_net
from digitslite.errors import UserError
from digitslite.jobs.kinds.base import JobKind
from digitslite.layout import JobFiles

KIND = JobKind(name="pretrained", title="Pretrained model", tab="pretrained", tab_title="Pretrained models",
               runner="digitslite.jobs.runners.pretrained",
               planner="digitslite.server.create_pretrained:plan_pretrained",
               api="digitslite.server.create_pretrained:pretrained_api", page="pages.pretrained",
               page_module="digitslite.server.pages.models",
               request_schema="digitslite.server.schemas.requests:PretrainedRequest")

FILE_ROLES = ("deploy", "weights", "network", "dataset_info", "classes", "colormap")
WEIGHTS_UPLOAD_DIR = "weights"  # inputs/weights/NAME: the copy of a store entry's weights a user uploaded


def input_path(params: dict[str, Any], role: str, job_dir: Path) -> Path | None:
    """Where the file of `role` is: in the job's inputs/ for uploads, else the server path."""
    value = params["files"].get(role)
    if value is None:
        return None
    return JobFiles(job_dir).input(value) if params["source"] == "upload" else Path(value)


def checked_deploy(deploy_file: Path) -> caffe_pb2.NetParameter:
    """The deploy network, refused (UserError) unless `net check` finds it builds for inference."""
    try:
        text = deploy_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{deploy_file.name}: not a readable prototxt ({exc})") from None
    report = check_net_text(text, deploy_file.name, CheckOptions(phase="test"))
    if report.error is not None:
        raise report.error
    return read_net(deploy_file)


def checked_weights(deploy: caffe_pb2.NetParameter, deploy_name: str, weights_file: Path) -> MatchReport:
    """How the .caffemodel fits the deploy network, refused (UserError) unless it gives every layer
    with parameters its weights."""
    report = match_weights(read_caffemodel(weights_file), param_shapes(deploy), source_name=weights_file.name)
    if report.missing:
        raise UserError(f"{weights_file.name} has no weights for the deploy network's layers "
                        f"{', '.join(report.missing)}; import the weights trained with this network")
    if not report.weights:
        raise UserError(f"{weights_file.name} shares no layer name with {deploy_name}; import the "
                        "weights trained with this network")
    return report
