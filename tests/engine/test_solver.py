"""The solver rules against an independent float64 numpy transcription of caffe-spec §4.3/§4.4/§7.8.

The problem is §7.8's least squares: E = 1/(2N)·‖Xw + b − y‖² with weight decay on w and b, a new
half of the data each iteration. The reference below is written from the spec's formulas, not
from the implementation, and the two are compared after every iteration (parameters and history).
"""
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from digitslite.caffe import caffe_pb2
from digitslite.engine.solver import SmoothedLoss, Solver
from digitslite.errors import UserError

RNG = np.random.default_rng(1701)
X = RNG.standard_normal((8, 6))
Y = RNG.standard_normal(8)


@dataclass
class Param:
    tensor: torch.Tensor
    lr_mult: float = 1.0
    decay_mult: float = 1.0


def make_params(w: np.ndarray, b: float, bias_lr: float = 1.0, bias_decay: float = 1.0) -> list[Param]:
    return [Param(torch.tensor(w, dtype=torch.float32, requires_grad=True)),
            Param(torch.tensor([b], dtype=torch.float32, requires_grad=True), bias_lr, bias_decay)]


def set_gradients(params: list[Param], rows: slice) -> None:
    """Gradient of 1/(2N)‖Xw + b − y‖² over the given rows, by autograd."""
    for p in params:
        p.tensor.grad = None
    w, b = params[0].tensor, params[1].tensor
    x, y = torch.tensor(X[rows], dtype=torch.float32), torch.tensor(Y[rows], dtype=torch.float32)
    ((x @ w + b - y) ** 2).sum().div(2 * len(y)).backward()


def reference_gradients(w: np.ndarray, b: float, rows: slice) -> tuple[np.ndarray, float]:
    residual = X[rows] @ w + b - Y[rows]
    return X[rows].T @ residual / len(residual), residual.mean()


def reference_rule(kind: str, hp: dict, g: np.ndarray, hist: list[np.ndarray], lr: float,
                   t: int) -> np.ndarray:
    """One §4.4/§7.8 update in float64: returns Δ and updates `hist` in place."""
    mu = hp.get("momentum", 0.0)
    delta = hp.get("delta", 1e-8)
    if kind == "SGD":
        hist[0][:] = lr * g + mu * hist[0]
        return hist[0].copy()
    if kind == "Nesterov":
        previous = hist[0].copy()
        hist[0][:] = lr * g + mu * previous
        return (1 + mu) * hist[0] - mu * previous
    if kind == "AdaGrad":
        hist[0][:] = hist[0] + g * g
        return lr * g / (np.sqrt(hist[0]) + delta)
    if kind == "RMSProp":
        rho = hp["rms_decay"]
        hist[0][:] = rho * hist[0] + (1 - rho) * g * g
        return lr * g / (np.sqrt(hist[0]) + delta)
    if kind == "AdaDelta":
        hist[0][:] = mu * hist[0] + (1 - mu) * g * g
        update = g * np.sqrt((hist[1] + delta) / (hist[0] + delta))
        hist[1][:] = mu * hist[1] + (1 - mu) * update * update
        return lr * update
    if kind == "Adam":
        beta2 = hp["momentum2"]
        hist[0][:] = mu * hist[0] + (1 - mu) * g
        hist[1][:] = beta2 * hist[1] + (1 - beta2) * g * g
        return lr * math.sqrt(1 - beta2**t) / (1 - mu**t) * hist[0] / (np.sqrt(hist[1]) + delta)
    raise AssertionError(kind)


CASES = [
    ("SGD", {"base_lr": 0.01, "weight_decay": 0.5, "momentum": 0.5}),
    ("SGD", {"base_lr": 1.0, "weight_decay": 0.5, "momentum": 0.5}),
    ("Nesterov", {"base_lr": 0.01, "weight_decay": 0.5, "momentum": 0.5}),
    ("AdaGrad", {"base_lr": 0.01, "weight_decay": 0.5}),
    ("RMSProp", {"base_lr": 0.01, "weight_decay": 0.5, "rms_decay": 0.95}),
    ("AdaDelta", {"base_lr": 0.1, "weight_decay": 0.1, "momentum": 0.95, "delta": 1e-6}),
    ("AdaDelta", {"base_lr": 0.1, "weight_decay": 0.5, "momentum": 0.5, "delta": 1e-6}),
    ("Adam", {"base_lr": 0.01, "weight_decay": 0.5, "momentum": 0.9, "momentum2": 0.999}),
    ("Adam", {"base_lr": 0.01, "weight_decay": 0.0, "momentum": 0.9, "momentum2": 0.999}),
]


@pytest.mark.parametrize(("kind", "hp"), CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_each_rule_matches_the_reference_update_after_every_iteration(kind, hp):
    param = caffe_pb2.SolverParameter(type=kind, lr_policy="fixed", **hp)
    w0 = RNG.standard_normal(6)
    params = make_params(w0, 0.3, bias_lr=2.0, bias_decay=0.0)
    solver = Solver(param, params)
    w, b = w0.copy(), np.array([0.3])
    buffers = 2 if kind in ("AdaDelta", "Adam") else 1
    hist_w = [np.zeros(6) for _ in range(buffers)]
    hist_b = [np.zeros(1) for _ in range(buffers)]
    for iteration in range(5):
        rows = slice(0, 4) if iteration % 2 == 0 else slice(4, 8)
        set_gradients(params, rows)
        assert solver.apply_update() == pytest.approx(hp["base_lr"])
        g_w, g_b = reference_gradients(w, b[0], rows)
        g_w = g_w + hp["weight_decay"] * w              # decay_mult 1 on the weights
        step_w = reference_rule(kind, hp, g_w, hist_w, hp["base_lr"], iteration + 1)
        step_b = reference_rule(kind, hp, np.array([g_b]), hist_b, 2 * hp["base_lr"], iteration + 1)
        w, b = w - step_w, b - step_b
        np.testing.assert_allclose(params[0].tensor.detach().numpy(), w, rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(params[1].tensor.detach().numpy(), b, rtol=2e-5, atol=1e-6)
        history = solver.history_arrays()
        np.testing.assert_allclose(np.concatenate([history[i * 2] for i in range(buffers)]),
                                   np.concatenate(hist_w), rtol=2e-5, atol=1e-7)
    assert solver.iter == 5


def test_sgd_history_equals_the_last_update():
    params = make_params(np.ones(6), 0.0)
    solver = Solver(sgd(base_lr=0.1, momentum=0.9), params)
    for _ in range(3):
        before = params[0].tensor.detach().clone()
        set_gradients(params, slice(0, 8))
        solver.apply_update()
        step = before - params[0].tensor.detach()
        torch.testing.assert_close(solver.history[0], step)


def test_adam_bias_correction_factor_is_folded_into_the_rate():
    # With a constant gradient g, m_t/sqrt(v_t) = (1-β1^t)/sqrt(1-β2^t), so the step is lr·sign(g)
    # only if the factor sqrt(1-β2^t)/(1-β1^t) (0.316228 at t=1, 0.235317 at t=2) is applied.
    p = Param(torch.zeros(1, requires_grad=True))
    solver = Solver(caffe_pb2.SolverParameter(type="Adam", lr_policy="fixed", base_lr=0.5, momentum=0.9,
                                              momentum2=0.999, delta=0.0), [p])
    for expected in (-0.5, -1.0):
        p.tensor.grad = torch.tensor([2.0])
        solver.apply_update()
        assert p.tensor.item() == pytest.approx(expected, rel=1e-5)


def sgd(**fields) -> caffe_pb2.SolverParameter:
    return caffe_pb2.SolverParameter(**{"type": "SGD", "lr_policy": "fixed", "base_lr": 1.0, **fields})


def test_clipping_uses_the_joint_norm_of_all_gradients():
    a, b = Param(torch.zeros(2, requires_grad=True)), Param(torch.zeros(1, requires_grad=True))
    a.tensor.grad, b.tensor.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
    Solver(sgd(clip_gradients=1.0), [a, b]).apply_update()
    torch.testing.assert_close(a.tensor.detach(), torch.tensor([-0.6, 0.0]))
    torch.testing.assert_close(b.tensor.detach(), torch.tensor([-0.8]))


def test_clip_acts_on_the_accumulated_gradient_then_iter_size_divides_then_decay_adds():
    # Accumulated gradient (6, 8) has norm 10 -> clipped to (3, 4) -> halved to (1.5, 2);
    # weight decay 0.1 on θ = (1, -1) then adds (0.1, -0.1), not halved.
    p = Param(torch.tensor([1.0, -1.0], requires_grad=True))
    p.tensor.grad = torch.tensor([6.0, 8.0])
    Solver(sgd(clip_gradients=5.0, iter_size=2, weight_decay=0.1), [p]).apply_update()
    torch.testing.assert_close(p.tensor.detach(), torch.tensor([1.0 - 1.6, -1.0 - 1.9]))


def test_a_gradient_under_the_clip_threshold_is_untouched():
    p = Param(torch.zeros(2, requires_grad=True))
    p.tensor.grad = torch.tensor([0.3, 0.4])
    Solver(sgd(clip_gradients=1.0), [p]).apply_update()
    torch.testing.assert_close(p.tensor.detach(), torch.tensor([-0.3, -0.4]))


def test_l1_adds_decay_times_sign_and_l2_decay_times_theta():
    theta = torch.tensor([2.0, -3.0, 0.0])
    results = {}
    for kind in ("L1", "L2"):
        p = Param(theta.clone().requires_grad_(), decay_mult=2.0)
        Solver(sgd(weight_decay=0.25, regularization_type=kind, base_lr=0.1), [p]).apply_update()
        results[kind] = p.tensor.detach()
    # local decay 0.5; no data gradient (None counts as zero)
    torch.testing.assert_close(results["L1"], theta - 0.1 * 0.5 * torch.tensor([1.0, -1.0, 0.0]))
    torch.testing.assert_close(results["L2"], theta - 0.1 * 0.5 * theta)


def test_lr_mult_zero_leaves_the_parameter_unchanged_even_with_decay_and_momentum():
    frozen = Param(torch.tensor([1.0, 2.0]), lr_mult=0.0)
    solver = Solver(sgd(weight_decay=0.5, momentum=0.9), [frozen])
    for _ in range(3):
        solver.apply_update()
    torch.testing.assert_close(frozen.tensor, torch.tensor([1.0, 2.0]))


def test_a_scheduled_rate_of_zero_still_applies_the_momentum_history():
    """Caffe runs Regularize and ComputeUpdateValue with rate 0 too: Δ = momentum·h, not 0.

    Hand-computed: θ = 1, gradient 2, weight decay 0.25, momentum 0.5; step policy with gamma 0
    gives rate 0.1 at iteration 0 and 0 from iteration 1.
    iteration 0: g = 2 + 0.25·1 = 2.25, h = 0.1·2.25 = 0.225, θ = 0.775;
    iteration 1: h = 0.5·0.225 + 0·g = 0.1125, θ = 0.6625.
    """
    p = Param(torch.tensor([1.0], requires_grad=True))
    solver = Solver(sgd(base_lr=0.1, momentum=0.5, weight_decay=0.25, lr_policy="step", stepsize=1,
                        gamma=0.0), [p])
    rates = []
    for _ in range(2):
        p.tensor.grad = torch.tensor([2.0])
        rates.append(solver.apply_update())
    assert rates == [pytest.approx(0.1), 0.0]
    torch.testing.assert_close(solver.history[0], torch.tensor([0.1125]))
    torch.testing.assert_close(p.tensor.detach(), torch.tensor([0.6625]))


def test_iter_size_two_halves_equal_one_full_batch():
    full, halves = make_params(np.linspace(-1, 1, 6), 0.1), make_params(np.linspace(-1, 1, 6), 0.1)
    fields = {"weight_decay": 0.5, "momentum": 0.9, "base_lr": 0.01}
    solver_full = Solver(sgd(**fields), full)
    solver_halves = Solver(sgd(iter_size=2, **fields), halves)
    for _ in range(4):
        set_gradients(full, slice(0, 8))
        solver_full.apply_update()
        accumulated = []
        for rows in (slice(0, 4), slice(4, 8)):
            set_gradients(halves, rows)
            accumulated.append([p.tensor.grad.clone() for p in halves])
        for p, first, second in zip(halves, *accumulated, strict=True):
            p.tensor.grad = first + second
        solver_halves.apply_update()
    for a, b in zip(full, halves, strict=True):
        torch.testing.assert_close(a.tensor, b.tensor, rtol=1e-6, atol=1e-7)


def test_rule_state_is_restored_exactly():
    params = make_params(np.ones(6), 0.0)
    solver = Solver(sgd(momentum=0.9, base_lr=0.01), params)
    set_gradients(params, slice(0, 8))
    solver.apply_update()
    copy = Solver(sgd(momentum=0.9, base_lr=0.01), make_params(np.ones(6), 0.0))
    copy.restore(solver.iter, 0, solver.history_arrays())
    assert copy.iter == 1
    assert all(torch.equal(a, b) for a, b in zip(copy.history, solver.history, strict=True))
    with pytest.raises(UserError, match="holds 1 history blobs"):
        copy.restore(1, 0, solver.history_arrays()[:1])


@pytest.mark.parametrize(("fields", "message"), [
    ({"type": "Momentum"}, "solver type 'Momentum' is unknown"),
    ({"type": "AdaGrad", "momentum": 0.9}, "does not use momentum"),
    ({"type": "RMSProp", "rms_decay": 1.0}, r"rms_decay must be in \[0, 1\)"),
    ({"regularization_type": "L3"}, "regularization_type 'L3'"),
    ({"iter_size": 0}, "iter_size must be at least 1"),
    ({"average_loss": 0}, "average_loss must be at least 1"),
])
def test_settings_caffe_aborts_on_are_refused(fields, message):
    param = caffe_pb2.SolverParameter(lr_policy="fixed", base_lr=0.1)
    for name, value in fields.items():
        setattr(param, name, value)
    with pytest.raises(UserError, match=message):
        Solver(param, [])


def test_smoothed_loss_is_the_running_mean_then_a_sliding_window():
    smoothed = SmoothedLoss(3)
    assert [smoothed.add(v) for v in (1.0, 2.0, 3.0, 4.0, 5.0, 9.0)] == pytest.approx(
        [1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
    restored = SmoothedLoss(3)
    restored.load(smoothed.state())
    assert restored.add(1.0) == smoothed.add(1.0)
