"""GET /api/v1/models/{id}/download?snapshot=N: a model as a tar.gz that stands on its own.

It holds the deploy, train_val, solver and all-in-one network prototxt, the snapshot's caffemodel,
dataset.json (class names and palette, which DIGITS' downloads lacked) and info.json with DIGITS'
keys, so that `digitslite infer` (or a pretrained import) needs nothing else.
"""
import io
import json
import tarfile
import tempfile
import time

from flask import Blueprint, request, send_file
from werkzeug.utils import secure_filename

from digitslite import __version__
from digitslite.jobs.folder import JobFolder
from digitslite.layout import (
    DATASET_INFO_FILE,
    DEPLOY_FILE,
    NETWORK_FILE,
    SOLVER_FILE,
    TRAIN_VAL_FILE,
)
from digitslite.server.errors import ApiError
from digitslite.server.schemas.openapi import operation
from digitslite.server.schemas.requests import SnapshotQuery
from digitslite.server.services import services

download_api = Blueprint("download_api", __name__)

# The job files a download carries (when the job has them), by their key in info.json.
CARRIED = {"deploy file": DEPLOY_FILE, "train_val file": TRAIN_VAL_FILE, "solver file": SOLVER_FILE,
           "network file": NETWORK_FILE, "dataset file": DATASET_INFO_FILE}


def _info(folder: JobFolder, weights_name: str, iteration: int, files: list[str]) -> dict:
    spec = folder.spec()
    info = {"name": spec.name, "job id": spec.id, "username": spec.owner, "framework": "digitslite",
            "digitslite version": __version__,
            "creation time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(spec.created)),
            "snapshot file": weights_name, "snapshot iteration": iteration}
    for key, name in CARRIED.items():
        if name in files:
            info[key] = name
    dataset_file = folder.path / DATASET_INFO_FILE
    if dataset_file.is_file():
        dataset = json.loads(dataset_file.read_text())
        info["classes"] = dataset.get("classes")
        size = (dataset.get("image_size") or {}).get("train") or {}
        if size.get("max"):
            info["image dimensions"] = [size["max"][1], size["max"][0], dataset.get("channels", 3)]
    return info


@download_api.get("/models/<job_id>/download")
@operation({200: "application/gzip"}, errors=(401, 404, 422), query=SnapshotQuery)
def download_model(job_id: str):
    """The model as tar.gz: prototxts, caffemodel, dataset.json, info.json"""
    row = services().index.get(job_id)
    if row is None or row["kind"] != "model":
        raise ApiError(404, f"no model job with id {job_id!r}")
    folder = services().scheduler.folder(job_id)
    snapshots = folder.snapshots()
    iteration = SnapshotQuery.parse(request.args.to_dict()).snapshot
    chosen = [snap for snap in snapshots if iteration is None or snap.iteration == iteration]
    if not chosen:
        have = ", ".join(str(snap.iteration) for snap in snapshots) or "none yet"
        wanted = "" if iteration is None else f" at iteration {iteration}"
        raise ApiError(404, f"model job {job_id} has no snapshot{wanted} (snapshots: {have})", "snapshot")
    snapshot = chosen[-1]
    files = [name for name in CARRIED.values() if (folder.path / name).is_file()]
    info = json.dumps(_info(folder, snapshot.weights.name, snapshot.iteration, files), indent=1).encode()
    # An unnamed temporary file: large weights never sit in memory, and nothing is left behind.
    archive = tempfile.TemporaryFile()  # noqa: SIM115 - send_file closes it after sending
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name in files:
            tar.add(folder.path / name, arcname=name)
        tar.add(snapshot.weights, arcname=snapshot.weights.name)
        entry = tarfile.TarInfo("info.json")
        entry.size, entry.mtime = len(info), int(time.time())
        tar.addfile(entry, io.BytesIO(info))
    archive.seek(0)
    name = f"{secure_filename(row['name']) or job_id}-iter{snapshot.iteration}.tar.gz"
    return send_file(archive, mimetype="application/gzip", as_attachment=True, download_name=name)
