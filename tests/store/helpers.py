"""Shared pieces of the store tests: a tiny FCN, its weights, a finished-job folder, and a store served
by `digitslite store serve` in a subprocess on a free loopback port."""
import contextlib
import json
import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from digitslite.caffe import caffe_pb2
from digitslite.caffe.caffemodel import write_caffemodel
from digitslite.caffe.coordmap import fill_crop_offsets
from digitslite.caffe.deploy import deploy_net
from digitslite.caffe.paramshapes import param_shapes
from digitslite.caffe.prototxt import filter_net, parse_net, read_net, write_net
from digitslite.caffe.surgery import bilinear_weights
from digitslite.engine.net import CaffeNet
from digitslite.modelstore.entries import write_info

CLASSES = ["background", "road", "car"]
PALETTE = [[0, 0, 0], [128, 64, 128], [0, 0, 200]]
HEIGHT, WIDTH = 24, 32
SERVER_START_SECONDS = 30

_DATA_LAYERS = "".join(
    f'layer {{ name: "{top}" type: "Data" top: "{top}" include {{ phase: {phase} }} '
    f"data_param {{ batch_size: 1 backend: LMDB }} }}\n"
    for phase in ("TRAIN", "TEST") for top in ("data", "label"))

# A small FCN: conv (pad 8) -> pool /2 -> 1x1 score -> x2 bilinear upscore -> Crop (offset 8, derived).
TINY_BODY = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 8 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "score_fr" type: "Convolution" bottom: "pool1" top: "score_fr"
        convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "upscore" type: "Deconvolution" bottom: "score_fr" top: "upscore" param { lr_mult: 0 }
        convolution_param { num_output: 3 GROUP kernel_size: 4 stride: 2 bias_term: false } }
layer { name: "score" type: "Crop" bottom: "upscore" bottom: "data" top: "score" crop_param { axis: 2 CROP} }
"""
TINY_LOSS = """
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
        exclude { stage: "deploy" } }
"""


def _body(grouped: bool, crop_offset: bool) -> str:
    body = TINY_BODY.replace("GROUP", "group: 3" if grouped else "")
    return body.replace("CROP", "offset: 8 " if crop_offset else "")


def tiny_network_text() -> str:
    """The all-in-one tiny FCN (train/val/deploy by phase and stage), as a training job holds it: like
    network_defs/, its Crop has no offset (digitslite derives it when it loads the net)."""
    body = _body(grouped=True, crop_offset=False)
    return f'name: "tiny_fcn"\n{_DATA_LAYERS}{body}{TINY_LOSS}'


def tiny_deploy_text(grouped: bool = True) -> str:
    """The tiny FCN as a deploy net with an Input layer and its Crop offset written."""
    body = _body(grouped, crop_offset=True)
    shape = f"input_param {{ shape {{ dim: 1 dim: 3 dim: {HEIGHT} dim: {WIDTH} }} }}"
    return f'name: "tiny_fcn"\nlayer {{ name: "input" type: "Input" top: "data" {shape} }}\n{body}'


def random_weights(net: caffe_pb2.NetParameter, seed: int, input_shapes=None) -> dict[str, list[np.ndarray]]:
    """Random weights for every parameter layer, bilinear ones for the upscore (as training keeps it;
    diagonal when the upscore is ungrouped, as fcn.berkeleyvision.org's)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shapes in param_shapes(filter_net(net, phase="test", stages=["deploy"]), input_shapes).items():
        if not shapes:
            continue
        if name == "upscore":
            weights[name] = [bilinear_weights(shapes[0], name)]
        else:
            weights[name] = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    return weights


def write_finished_job(job_dir: Path, dataset_dir: Path, iteration: int = 20) -> Path:
    """A model job folder as `digitslite train` leaves it (train_val.prototxt, solver.prototxt naming
    it, snapshots under the solver's prefix, metrics.jsonl) and the dataset folder it trained on;
    returns the newest snapshot."""
    job_dir.mkdir(parents=True)
    dataset_dir.mkdir(parents=True)
    text = tiny_network_text()
    (job_dir / "train_val.prototxt").write_text(text)
    (job_dir / "solver.prototxt").write_text(
        'net: "train_val.prototxt"\ntype: "SGD"\nbase_lr: 0.01\nmax_iter: 20\nsnapshot: 10\n'
        'snapshot_prefix: "snaps/tiny"\n')
    (job_dir / "job.json").write_text(json.dumps({"name": "tiny demo model", "kind": "model"}))
    train_net = filter_net(parse_net(text), phase="train")
    weights = random_weights(parse_net(tiny_deploy_text()), seed=5)
    (job_dir / "snaps").mkdir()
    for snapshot_iteration in (10, iteration):
        write_caffemodel(job_dir / "snaps" / f"tiny_iter_{snapshot_iteration}.caffemodel", train_net, weights)
    lines = [{"iteration": 10, "phase": "train", "loss": 1.2},
             {"iteration": 10, "phase": "val", "loss": 1.0, "mean_iu": 0.31, "pixel_accuracy": 0.7},
             {"iteration": iteration, "phase": "val", "loss": 0.8, "mean_iu": 0.42, "pixel_accuracy": 0.8}]
    (job_dir / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    dataset_info = {"classes": CLASSES, "palette": PALETTE, "channels": 3,
                    "image_size": {"train": {"min": [WIDTH, HEIGHT], "max": [WIDTH, HEIGHT]}},
                    "mean_file": None}
    (dataset_dir / "dataset.json").write_text(json.dumps(dataset_info))
    return job_dir / "snaps" / f"tiny_iter_{iteration}.caffemodel"


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def job_deploy(job_dir: Path, input_shape, out: Path) -> Path:
    """The deploy net digitslite makes from a job's network (Crop offsets derived, as when it loads it)."""
    write_net(deploy_net(fill_crop_offsets(read_net(job_dir / "train_val.prototxt")), input_shape), out)
    return out


def scores(deploy: Path, weights: Path, image: np.ndarray) -> np.ndarray:
    """The deploy net's "score" output for one image, run by the engine."""
    net = CaffeNet(read_net(deploy), phase="test")
    net.load_weights(weights)
    with torch.no_grad():
        return net.forward({"data": torch.from_numpy(image)})["score"].numpy()


@contextlib.contextmanager
def served_store(store_dir: Path) -> Iterator[str]:
    """`digitslite store serve STORE_DIR --port 0` running; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "digitslite", "store", "serve", str(store_dir), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield _announced_url(process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


def _announced_url(process: subprocess.Popen) -> str:
    """The URL from the server's first line ("serving http://host:port/ ..."), waited for with a deadline."""
    deadline = time.monotonic() + SERVER_START_SECONDS
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=deadline - time.monotonic()):
                line = process.stdout.readline()
                if line.startswith("serving "):
                    return line.split()[1].rstrip("/")
                if not line:
                    break
    errors = process.stderr.read() if process.poll() is not None else "(still running)"
    raise AssertionError(f"the store server did not announce its URL in time: {errors}")


def write_tiny_entry(folder: Path, *, grouped: bool = True, seed: int = 3, **info) -> Path:
    """A store entry folder holding the tiny FCN (deploy net, weights, labels), checksummed."""
    folder.mkdir(parents=True)
    text = tiny_deploy_text(grouped)
    (folder / "deploy.prototxt").write_text(text)
    net = parse_net(text)
    write_caffemodel(folder / "weights.caffemodel", net, random_weights(net, seed))
    (folder / "labels.txt").write_text("".join(f"{name}\n" for name in CLASSES))
    write_info(folder, {"name": "tiny FCN", "framework": "caffe", "task": "semantic-segmentation",
                        "model file": "deploy.prototxt", "deploy file": "deploy.prototxt",
                        "snapshot file": "weights.caffemodel", "labels file": "labels.txt",
                        "classes": CLASSES, "palette": PALETTE, "metrics": {"mean_iu": 0.5},
                        "license": "CC0", **info})
    return folder
