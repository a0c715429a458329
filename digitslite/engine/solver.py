"""Caffe's gradient-based solvers, applied to a CaffeNet's learnable parameters.

torch.optim is not used: Caffe clips on the accumulated gradient, then divides by iter_size, then
adds weight decay, then applies the rule (caffe-spec §4.3), and its rules differ from torch's in
detail (SGD scales the history by the rate, Adam folds the bias correction into the rate). The
arithmetic below follows Caffe's operation order with float32 scalars, so the hand-computed
vectors of §7.8 are reproduced.
"""
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from digitslite.caffe import caffe_pb2
from digitslite.engine.lr_policy import check_policy, learning_rate
from digitslite.errors import UserError


def f32(value: float) -> float:
    """`value` rounded to float32, the precision of Caffe's Dtype scalars."""
    return float(np.float32(value))


@dataclass(frozen=True)
class Hyper:
    """The rule constants of a SolverParameter, rounded to float32 once."""

    momentum: float
    momentum2: float
    rms_decay: float
    delta: float


# An update rule: (gradient, its history buffers, constants, local rate, t = iter + 1) -> the step Δ.
# Rules may overwrite the gradient tensor; Δ must not alias a history buffer that later changes.
Rule = Callable[[torch.Tensor, list[torch.Tensor], Hyper, float, int], torch.Tensor]


def _sgd(g: torch.Tensor, hist: list[torch.Tensor], hp: Hyper, rate: float, t: int) -> torch.Tensor:
    (h,) = hist
    h.mul_(hp.momentum).add_(g, alpha=rate)
    return g.copy_(h)


def _nesterov(g: torch.Tensor, hist: list[torch.Tensor], hp: Hyper, rate: float, t: int) -> torch.Tensor:
    (h,) = hist
    previous = h.clone()
    h.mul_(hp.momentum).add_(g, alpha=rate)
    return g.copy_(previous.mul_(-hp.momentum).add_(h, alpha=f32(1 + hp.momentum)))


def _adagrad(g: torch.Tensor, hist: list[torch.Tensor], hp: Hyper, rate: float, t: int) -> torch.Tensor:
    (h,) = hist
    h.add_(g * g)
    return g.div_(h.sqrt().add_(hp.delta)).mul_(rate)


def _rmsprop(g: torch.Tensor, hist: list[torch.Tensor], hp: Hyper, rate: float, t: int) -> torch.Tensor:
    (h,) = hist
    h.mul_(hp.rms_decay).add_(g * g, alpha=f32(1 - hp.rms_decay))
    return g.div_(h.sqrt().add_(hp.delta)).mul_(rate)


def _adadelta(g: torch.Tensor, hist: list[torch.Tensor], hp: Hyper, rate: float, t: int) -> torch.Tensor:
    h, h_update = hist
    rho = hp.momentum
    h.mul_(rho).add_(g * g, alpha=f32(1 - rho))
    ratio = (h_update + hp.delta).div_(h + hp.delta).sqrt_()
    g.mul_(ratio)
    h_update.mul_(rho).add_(g * g, alpha=f32(1 - rho))
    return g.mul_(rate)


def _adam(g: torch.Tensor, hist: list[torch.Tensor], hp: Hyper, rate: float, t: int) -> torch.Tensor:
    m, v = hist
    beta1, beta2 = hp.momentum, hp.momentum2
    correction = f32(math.sqrt(1 - beta2**t) / (1 - beta1**t))
    m.mul_(beta1).add_(g, alpha=f32(1 - beta1))
    v.mul_(beta2).add_(g * g, alpha=f32(1 - beta2))
    return g.copy_(m).div_(v.sqrt().add_(hp.delta)).mul_(f32(rate * correction))


# Caffe type name (choices.SOLVER_TYPES) -> (rule, history buffers per parameter).
RULES: dict[str, tuple[Rule, int]] = {
    "SGD": (_sgd, 1),
    "Nesterov": (_nesterov, 1),
    "AdaGrad": (_adagrad, 1),
    "RMSProp": (_rmsprop, 1),
    "AdaDelta": (_adadelta, 2),
    "Adam": (_adam, 2),
}


class Learnable(Protocol):
    """What the solver needs of a learnable parameter (digitslite.engine.net.LearnableParam has it)."""

    tensor: torch.Tensor
    lr_mult: float
    decay_mult: float


# Counts and factors that have no meaning below zero (Caffe reads them as unsigned or never checks).
NON_NEGATIVE = ("base_lr", "max_iter", "display", "snapshot", "test_interval", "weight_decay", "momentum",
                "momentum2")


def check_solver(solver: caffe_pb2.SolverParameter, source: str = "solver",
                 field_name: Callable[[str], str] = str) -> None:
    """Refuse settings Caffe aborts on, naming the field (in the interface's words) and the fix."""
    if solver.type not in RULES:
        raise UserError(f"{source}: solver {field_name('type')} {solver.type!r} is unknown; use one of "
                        f"{', '.join(RULES)}")
    if solver.type in ("AdaGrad", "RMSProp") and solver.momentum != 0:
        raise UserError(f"{source}: {solver.type} does not use momentum (it is {solver.momentum}); "
                        f"remove {field_name('momentum')} or set it to 0")
    if solver.type == "RMSProp" and not 0 <= solver.rms_decay < 1:
        raise UserError(f"{source}: rms_decay must be in [0, 1) (it is {solver.rms_decay}); set e.g. 0.98")
    if solver.regularization_type not in ("L1", "L2"):
        raise UserError(f"{source}: regularization_type {solver.regularization_type!r} is unknown; "
                        "use \"L2\" or \"L1\"")
    for field in ("iter_size", "average_loss"):
        value = getattr(solver, field)
        if value < 1:
            raise UserError(f"{source}: {field_name(field)} must be at least 1 (it is {value})")
    for field in NON_NEGATIVE:
        value = getattr(solver, field)
        if solver.HasField(field) and value < 0:
            raise UserError(f"{source}: {field_name(field)} must be 0 or more (it is {value:g})")
    check_policy(solver, source, field_name)


class Solver:
    """Caffe's ApplyUpdate over a fixed list of learnable parameters, with its iteration state.

    `iter` counts completed updates; `current_step` is the lr schedule counter; `history` holds the
    rule's buffers in Caffe's order (all first buffers, then all second buffers for AdaDelta/Adam),
    which is the order of SolverState.history.
    """

    def __init__(self, solver: caffe_pb2.SolverParameter, params: Sequence[Learnable],
                 source: str = "solver", *,
                 joint_sum: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        """`joint_sum` adds a value over the processes whose parameters make up the net together
        (a pipeline's stages: the squared gradient norm for clipping)."""
        check_solver(solver, source)
        self.param = solver
        self.params = list(params)
        self.joint_sum = joint_sum
        self.rule, buffers = RULES[solver.type]
        self.hyper = Hyper(f32(solver.momentum), f32(solver.momentum2), f32(solver.rms_decay),
                           f32(solver.delta))
        self.iter = 0
        self.current_step = 0
        self.history = [torch.zeros_like(p.tensor, dtype=torch.float32)
                        for _ in range(buffers) for p in self.params]

    def learning_rate(self) -> float:
        """The rate for the update about to happen (advances the multistep counter like Caffe)."""
        rate, self.current_step = learning_rate(self.param, self.iter, self.current_step)
        return rate

    @torch.no_grad()
    def apply_update(self) -> float:
        """Update every parameter from its accumulated `.grad` (None counts as zero), then iter += 1.

        Returns the learning rate used. Gradients are consumed (overwritten with the step).
        """
        rate = self.learning_rate()
        grads = [p.tensor.grad if p.tensor.grad is not None else torch.zeros_like(p.tensor)
                 for p in self.params]
        self._clip(grads)
        solver, count = self.param, len(self.params)
        for index, (p, g) in enumerate(zip(self.params, grads, strict=True)):
            if solver.iter_size > 1:
                g.mul_(f32(1 / solver.iter_size))
            local_decay = f32(solver.weight_decay * p.decay_mult)
            if local_decay != 0:
                g.add_(p.tensor if solver.regularization_type == "L2" else torch.sign(p.tensor),
                       alpha=local_decay)
            local_rate = f32(rate * p.lr_mult)
            step = self.rule(g, self.history[index::count], self.hyper, local_rate, self.iter + 1)
            # A scheduled rate of 0 still applies the step (SGD's momentum history carries on, §4.3);
            # only lr_mult 0 freezes a parameter (§4.4: BatchNorm statistics stay as forward left them).
            if p.lr_mult != 0:
                p.tensor.sub_(step)
        self.iter += 1
        return rate

    def skip_update(self) -> float:
        """Count an iteration whose gradients were unusable (fp16 overflow) without changing any
        parameter; the lr schedule still advances. Returns the rate it would have used."""
        rate = self.learning_rate()
        self.iter += 1
        return rate

    def _clip(self, grads: list[torch.Tensor]) -> None:
        """Scale all gradients together so their joint L2 norm is at most clip_gradients."""
        limit = self.param.clip_gradients
        if limit < 0 or (not grads and self.joint_sum is None):
            return
        squares = torch.stack([g.double().square().sum() for g in grads]).sum() if grads else \
            torch.zeros((), dtype=torch.float64, device=self.params[0].tensor.device if self.params else None)
        norm = (squares if self.joint_sum is None else self.joint_sum(squares)).sqrt()
        scale = torch.where(norm > limit, limit / norm, torch.ones_like(norm)).float()
        for g in grads:
            g.mul_(scale)

    def history_arrays(self) -> list[np.ndarray]:
        """The history buffers as float32 arrays, in SolverState order."""
        return [h.detach().cpu().numpy().astype(np.float32) for h in self.history]

    def restore(self, iteration: int, current_step: int, history: Sequence[np.ndarray],
                source: str = "the solver state") -> None:
        """Continue from a saved state; the history must match this solver's buffers exactly."""
        if len(history) != len(self.history):
            raise UserError(f"{source}: holds {len(history)} history blobs but this solver "
                            f"({self.param.type} on {len(self.params)} parameters) needs "
                            f"{len(self.history)}; "
                            "resume with the same network and solver type")
        for index, (buffer, saved) in enumerate(zip(self.history, history, strict=True)):
            if saved.size != buffer.numel():
                raise UserError(f"{source}: history blob {index} has {saved.size} values but the "
                                f"parameter has {buffer.numel()}; resume with the same network")
            values = torch.from_numpy(np.ascontiguousarray(saved, dtype=np.float32))
            buffer.copy_(values.reshape(buffer.shape))
        self.iter, self.current_step = iteration, current_step


class SmoothedLoss:
    """Caffe's average_loss display smoothing (§4.7): the mean of the last `window` iteration losses."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.values: list[float] = []
        self.added = 0
        self.value = 0.0

    def add(self, loss: float) -> float:
        """Record one iteration's loss and return the smoothed value."""
        if len(self.values) < self.window:
            self.values.append(loss)
            self.value = (self.value * (len(self.values) - 1) + loss) / len(self.values)
        else:
            index = self.added % self.window
            self.value += (loss - self.values[index]) / self.window
            self.values[index] = loss
        self.added += 1
        return self.value

    def state(self) -> dict:
        """JSON-safe: the window may hold 0-d tensors (kept on the device to avoid a sync per iteration)."""
        return {"values": [float(v) for v in self.values], "added": self.added, "value": float(self.value)}

    def load(self, state: dict) -> None:
        self.values, self.added, self.value = list(state["values"]), state["added"], state["value"]
