"""Pretrained jobs: imported weights, checked against their deploy network and kept under fixed names.

The job folder then holds deploy.prototxt, weights.caffemodel, network.prototxt when a trainable
network came along (so models can fine-tune from it), and dataset.json with the class names and
palette when they were given (so inference can colour its output).
"""
import json
import shutil
from pathlib import Path
from typing import Any

from digitslite.caffe.caffemodel import match_weights, read_caffemodel
from digitslite.caffe.paramshapes import param_shapes
from digitslite.caffe.prototxt import read_net
from digitslite.datasets.colormap import default_palette, read_class_names, read_colormap
from digitslite.errors import UserError
from digitslite.jobs.folder import INPUTS_DIR
from digitslite.jobs.runners.context import RunContext
from digitslite.jobs.runners.names import DATASET_INFO_FILE, DEPLOY_FILE, NETWORK_FILE, PRETRAINED_WEIGHTS

FILE_ROLES = ("deploy", "weights", "network", "dataset_info", "classes", "colormap")


def input_path(params: dict[str, Any], role: str, job_dir: Path) -> Path | None:
    """Where the file of `role` is: in the job's inputs/ for uploads, else the server path."""
    value = params["files"].get(role)
    if value is None:
        return None
    return job_dir / INPUTS_DIR / value if params["source"] == "upload" else Path(value)


def _class_info(params: dict[str, Any], job_dir: Path) -> dict[str, Any] | None:
    """Class names and palette: a dataset.json that came along, or classes / colormap files."""
    info_file = input_path(params, "dataset_info", job_dir)
    if info_file is not None:
        info = json.loads(info_file.read_text())
        palette = info.get("palette") or default_palette(len(info["classes"]))
        return {"classes": info["classes"], "palette": [list(colour) for colour in palette]}
    classes_file = input_path(params, "classes", job_dir)
    colormap_file = input_path(params, "colormap", job_dir)
    colormap = read_colormap(colormap_file) if colormap_file else None
    names = read_class_names(classes_file) if classes_file else None
    if names is None and colormap is None:
        return None
    if names is None:
        names = [name or f"class {index}" for index, name in enumerate(colormap.names)]
    palette = [list(colour) for colour in colormap.colours] if colormap else default_palette(len(names))
    if len(palette) != len(names):
        raise UserError(f"{len(names)} class names but {len(palette)} colours; give one colour per class")
    return {"classes": names, "palette": [list(colour) for colour in palette]}


def run(ctx: RunContext) -> None:
    deploy_file = input_path(ctx.params, "deploy", ctx.job_dir)
    weights_file = input_path(ctx.params, "weights", ctx.job_dir)
    deploy = read_net(deploy_file)
    ctx.report(0.2, "reading the weights")
    report = match_weights(read_caffemodel(weights_file), param_shapes(deploy), source_name=weights_file.name)
    if report.missing:
        raise UserError(f"{weights_file.name} has no weights for the deploy network's layers "
                        f"{', '.join(report.missing)}; import the weights trained with this network")
    if not report.weights:
        raise UserError(f"{weights_file.name} shares no layer name with {deploy_file.name}; import the "
                        "weights trained with this network")
    ctx.report(0.8, "installing the files")
    shutil.copyfile(deploy_file, ctx.job_dir / DEPLOY_FILE)
    shutil.copyfile(weights_file, ctx.job_dir / PRETRAINED_WEIGHTS)
    network_file = input_path(ctx.params, "network", ctx.job_dir)
    if network_file is not None:
        read_net(network_file)
        shutil.copyfile(network_file, ctx.job_dir / NETWORK_FILE)
    info = _class_info(ctx.params, ctx.job_dir)
    if info is not None:
        (ctx.job_dir / DATASET_INFO_FILE).write_text(json.dumps(info, indent=1))
    print(f"imported {len(report.weights)} layers of weights; ignored {len(report.ignored)} unused ones",
          flush=True)
