"""Every single-layer case of ../shared/caffe_golden: forward, backward and parameter values
against real Caffe's, run the way the set's README prescribes."""
import numpy as np
import pytest
import torch

from digitslite.caffe.caffemodel import read_weights
from digitslite.caffe.paramshapes import param_shapes
from digitslite.caffe.prototxt import filter_net, read_net
from digitslite.engine.net import CaffeNet
from tests.golden.golden import FORWARD, GRADIENT, assert_close, case_names, golden_dir, index

pytestmark = pytest.mark.usefixtures("one_thread")

# Layer types whose outputs are copies, indices or counts: Caffe's values exactly.
EXACT = frozenset({"ArgMax", "Accuracy", "Threshold", "Filter", "BatchReindex", "Tile", "Crop", "Slice"})


def _gradient(net: CaffeNet, blob: str, inputs: dict[str, torch.Tensor]) -> np.ndarray:
    """The diff Caffe left on a bottom: an Input blob's, or the one of the Parameter layer
    `in_<blob>` that produces it (the README's Parameter-input cases). None reads as zero."""
    if blob in inputs:
        tensor = inputs[blob]
    else:
        (tensor,) = [p.tensor for p in net.learnable_params() if p.layer == f"in_{blob}"]
    return np.zeros(tuple(tensor.shape), np.float32) if tensor.grad is None else tensor.grad.numpy()


def _param_diffs(net: CaffeNet) -> dict[str, np.ndarray]:
    return {f"{p.layer}:{p.index}": (np.zeros(tuple(p.tensor.shape), np.float32) if p.tensor.grad is None
                                     else p.tensor.grad.numpy()) for p in net.learnable_params()}


@pytest.mark.parametrize("name", case_names("layers"))
def test_layer_case(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = golden_dir() / "layers" / name
    info = index()["layers"][name]
    monkeypatch.chdir(folder)   # infogain_source names "H.binaryproto" relative to the case folder
    arrays = dict(np.load(folder / "case.npz"))
    prototxt = read_net(folder / "net.prototxt")
    net = CaffeNet(prototxt, info["phase"].lower())
    saved = {}
    if (folder / "weights.caffemodel").is_file():
        net.load_weights(folder / "weights.caffemodel")
        saved = read_weights(folder / "weights.caffemodel")
    # The static parameter shapes (net check, surgery) are the shapes of the blobs Caffe saved.
    declared = param_shapes(filter_net(prototxt, info["phase"].lower()))
    assert {layer: shapes for layer, shapes in declared.items() if shapes} == \
        {layer: [blob.shape for blob in blobs] for layer, blobs in saved.items() if blobs}
    wanted_diffs = {key.split(":", 1)[1] for key in arrays if key.startswith("bottomdiff:")}
    inputs = {blob: torch.from_numpy(arrays[f"in:{blob}"]).requires_grad_(blob in wanted_diffs)
              for blob in net.input_names}
    blobs = net.forward(inputs, keep={key.split(":", 1)[1] for key in arrays
                                      if key.startswith(("out:", "topdiff:"))})

    exact = info["type"] in EXACT
    for key in (k for k in arrays if k.startswith("out:")):
        got = blobs[key[4:]].detach().numpy()
        assert_close(key, got, arrays[key], 0 if exact else FORWARD)
    if info["mode"] == "forward":
        return
    if info["mode"] == "loss":
        total = net.loss(blobs)
    else:
        total = sum((blobs[key[8:]].float() * torch.from_numpy(arrays[key])).sum()
                    for key in arrays if key.startswith("topdiff:"))
    if total.requires_grad:   # else nothing reaches a bottom (Power with power 0): Caffe's diffs are 0
        total.backward()

    for blob in sorted(wanted_diffs):
        assert_close(f"bottomdiff:{blob}", _gradient(net, blob, inputs), arrays[f"bottomdiff:{blob}"],
                     GRADIENT)
    diffs, weights = _param_diffs(net), net.weights()
    for key in (k for k in arrays if k.startswith("paramdiff:")):
        assert_close(key, diffs[key[10:]], arrays[key], GRADIENT)
    for key in (k for k in arrays if k.startswith("param:")):
        layer, index_ = key[6:].rsplit(":", 1)
        assert_close(key, weights[layer][int(index_)], arrays[key], FORWARD)
