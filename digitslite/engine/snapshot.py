"""Snapshots Caffe can read, plus what digitslite needs to continue a run bit for bit.

Each snapshot is three files named from the prefix and the completed-update count N (§4.8):
  <prefix>_iter_N.caffemodel    the train net's weights (a NetParameter with blobs)
  <prefix>_iter_N.resume.json   digitslite's extension: RNG states (base64 of torch's state bytes,
                                one per rank), feed positions, the smoothed-loss window, the fp16
                                loss scale, the rank count
  <prefix>_iter_N.solverstate   Caffe's SolverState: iter, learned_net, history, current_step
The .solverstate is written last, so its presence means the snapshot is complete. Nothing is
pickled; every file appears whole or not at all (temp file + rename).
"""
import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from google.protobuf.message import DecodeError

from digitslite.caffe import caffe_pb2
from digitslite.caffe.caffemodel import array_to_blob, blob_to_array, write_caffemodel
from digitslite.errors import UserError
from digitslite.fileio import write_atomically
from digitslite.layout import SIDECAR_SUFFIX, SOLVERSTATE_SUFFIX, WEIGHTS_SUFFIX, snapshot_stem

SIDECAR_FORMAT = 2          # 2: feed positions count samples of all ranks (1: batches of one process)
READABLE_FORMATS = (1, 2)


@dataclass(frozen=True)
class SnapshotFiles:
    caffemodel: Path
    solverstate: Path
    sidecar: Path


def snapshot_files(prefix: str | Path, iteration: int) -> SnapshotFiles:
    """The three files of one snapshot (names in digitslite.layout)."""
    stem = snapshot_stem(prefix, iteration)
    return SnapshotFiles(Path(stem + WEIGHTS_SUFFIX), Path(stem + SOLVERSTATE_SUFFIX),
                         Path(stem + SIDECAR_SUFFIX))


@dataclass
class Snapshot:
    """A snapshot as read back: what Caffe's Restore uses, and the digitslite sidecar if present."""

    iteration: int
    current_step: int
    history: list[np.ndarray]
    caffemodel: Path
    extra: dict[str, Any] | None


def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """torch's generator states as JSON-safe text: the CPU's and, when training runs on a CUDA
    device, that device's (each rank saves its own; a rank sees one device or several)."""
    state = {"cpu": _encode(torch.get_rng_state())}
    if device is not None and device.type == "cuda":
        state["cuda"] = [_encode(torch.cuda.get_rng_state(device))]
    return state


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    torch.set_rng_state(_decode(state["cpu"]))
    if "cuda" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(_decode(state["cuda"][0]), device)


def _encode(state: torch.Tensor) -> str:
    return base64.b64encode(state.numpy().tobytes()).decode("ascii")


def _decode(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def write_snapshot(prefix: str | Path, iteration: int, current_step: int, net: caffe_pb2.NetParameter,
                   weights: dict[str, list[np.ndarray]], history: list[np.ndarray],
                   extra: dict[str, Any]) -> SnapshotFiles:
    """Write the three files of the snapshot after `iteration` updates; returns their paths."""
    files = snapshot_files(prefix, iteration)
    files.caffemodel.parent.mkdir(parents=True, exist_ok=True)
    write_caffemodel(files.caffemodel, net, weights)
    sidecar = {"format": SIDECAR_FORMAT, "iter": iteration, **extra}
    write_atomically(files.sidecar, json.dumps(sidecar).encode("utf-8"))
    state = caffe_pb2.SolverState(iter=iteration, learned_net=files.caffemodel.name,
                                  current_step=current_step)
    state.history.extend(array_to_blob(array) for array in history)
    write_atomically(files.solverstate, state.SerializeToString())
    return files


def read_snapshot(path: str | Path) -> Snapshot:
    """Read a .solverstate (or the .caffemodel beside it) and its sidecar, if any.

    learned_net is looked up beside the .solverstate first (snapshots move with their job folder),
    then as written (Caffe resolves it against its working directory).
    """
    path = Path(path)
    if path.suffix == WEIGHTS_SUFFIX:
        path = path.with_suffix(SOLVERSTATE_SUFFIX)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the solver state ({exc.strerror}); give the .solverstate "
                        "file of a snapshot") from None
    state = caffe_pb2.SolverState()
    try:
        state.ParseFromString(data)
    except DecodeError:
        raise UserError(f"{path}: not a Caffe .solverstate (damaged or another kind of file); give the "
                        ".solverstate file of a snapshot") from None
    candidates = [path.parent / Path(state.learned_net).name, Path(state.learned_net)]
    caffemodel = next((candidate for candidate in candidates if candidate.is_file()), None)
    if not state.learned_net or caffemodel is None:
        raise UserError(f"{path}: its weights file {state.learned_net!r} is not beside it; keep the "
                        ".caffemodel of the snapshot next to the .solverstate")
    sidecar = path.with_suffix(SIDECAR_SUFFIX)
    extra = json.loads(sidecar.read_text()) if sidecar.is_file() else None
    if extra is not None and extra.get("format") not in READABLE_FORMATS:
        raise UserError(f"{sidecar}: written by another digitslite version (format {extra.get('format')}); "
                        "delete it to resume like Caffe (without the exact data position)")
    return Snapshot(state.iter, state.current_step, [blob_to_array(blob) for blob in state.history],
                    caffemodel, extra)
