"""Caffe's learning-rate policies (caffe-spec §4.5), as a pure function of the solver settings.

The schedule is a function of the completed-update count `iter` and, for "multistep", of the
`current_step` counter that Caffe keeps (and saves in the .solverstate): a multistep schedule
advances at most one step per call, so the counter is state, not something derivable from iter.
"""
import math

import numpy as np

from digitslite.caffe import caffe_pb2
from digitslite.errors import UserError

# Each policy and the solver fields its formula reads, which Caffe gives no defaults.
POLICY_FIELDS: dict[str, tuple[str, ...]] = {
    "fixed": (), "step": ("gamma", "stepsize"), "exp": ("gamma",), "inv": ("gamma", "power"),
    "multistep": ("gamma", "stepvalue"), "poly": ("power",), "sigmoid": ("gamma", "stepsize"),
}
POLICIES = tuple(POLICY_FIELDS)


def check_policy(solver: caffe_pb2.SolverParameter, source: str = "solver") -> None:
    """Refuse a schedule Caffe would abort on, before any training starts."""
    policy = solver.lr_policy
    if policy not in POLICIES:
        shown = repr(policy) if policy else "none"
        raise UserError(f"{source}: lr_policy is {shown}; set lr_policy to one of {', '.join(POLICIES)}")
    if policy == "step" and solver.stepsize <= 0:
        raise UserError(f"{source}: lr_policy \"step\" needs stepsize > 0 (it is {solver.stepsize}); "
                        "set stepsize to the number of iterations between rate drops")
    if policy == "poly" and solver.max_iter <= 0:
        raise UserError(f"{source}: lr_policy \"poly\" needs max_iter > 0; set max_iter")


def _multistep(solver: caffe_pb2.SolverParameter, iteration: int, current_step: int) -> int:
    """Caffe advances the multistep counter by at most one per call."""
    if current_step < len(solver.stepvalue) and iteration >= solver.stepvalue[current_step]:
        return current_step + 1
    return current_step


def learning_rate(solver: caffe_pb2.SolverParameter, iteration: int, current_step: int) -> tuple[float, int]:
    """Return (rate, current_step) at `iteration` completed updates, rounded to float32 like Caffe's Dtype.

    `current_step` is the counter before this call; the returned one is what Caffe stores after it.
    """
    check_policy(solver)
    policy, base, gamma, power = solver.lr_policy, solver.base_lr, solver.gamma, solver.power
    if policy == "step":
        current_step = iteration // solver.stepsize
    elif policy == "multistep":
        current_step = _multistep(solver, iteration, current_step)
    rates = {
        "fixed": lambda: base,
        "step": lambda: base * gamma**current_step,
        "multistep": lambda: base * gamma**current_step,
        "exp": lambda: base * gamma**iteration,
        "inv": lambda: base * (1.0 + gamma * iteration) ** (-power),
        "poly": lambda: base * (1.0 - iteration / solver.max_iter) ** power,
        "sigmoid": lambda: base / (1.0 + math.exp(-gamma * (iteration - solver.stepsize))),
    }
    return float(np.float32(rates[policy]())), current_step
