"""The twelve 20-iteration solver runs of ../shared/caffe_golden: losses, final weights and the
solver history against real Caffe's (tolerance 1e-3, the set's training tolerance)."""
import numpy as np
import pytest
import torch

from digitslite.caffe.prototxt import read_net, read_solver
from digitslite.engine.net import CaffeNet
from digitslite.engine.solver import Solver
from tests.golden.golden import GRADIENT, assert_close, case_names, golden_dir

pytestmark = pytest.mark.usefixtures("one_thread")

ITERATIONS = 20


@pytest.mark.parametrize("name", case_names("solvers"))
def test_solver_run(name: str) -> None:
    folder = golden_dir() / "solvers" / name
    param = read_solver(folder / "solver.prototxt")
    assert param.max_iter == ITERATIONS
    net = CaffeNet(read_net(folder / param.net), "train")
    net.load_weights(folder / "init.caffemodel")
    solver = Solver(param, net.learnable_params())
    batches, expected = np.load(folder / "batches.npz"), np.load(folder / "expected.npz")
    for iteration in range(ITERATIONS):
        for p in net.learnable_params():
            p.tensor.grad = None
        losses = []
        for micro in range(param.iter_size):   # iteration i reads micro-batches i·iter_size + k
            batch = iteration * param.iter_size + micro
            outputs = net.forward({"data": torch.from_numpy(batches[f"data:{batch}"]),
                                   "label": torch.from_numpy(batches[f"label:{batch}"])})
            loss = net.loss(outputs)
            loss.backward()
            losses.append(loss.item())
        mean_loss = np.float32(np.mean(losses))
        assert_close(f"loss:{iteration}", mean_loss, expected[f"loss:{iteration}"], GRADIENT)
        solver.apply_update()
    weights = net.weights()
    for key in (k for k in expected.files if k.startswith("param:")):
        layer, index = key[6:].rsplit(":", 1)
        assert_close(key, weights[layer][int(index)], expected[key], GRADIENT)
    history = solver.history_arrays()
    assert len(history) == sum(k.startswith("history:") for k in expected.files)
    for index, values in enumerate(history):
        assert_close(f"history:{index}", values, expected[f"history:{index}"], GRADIENT)
