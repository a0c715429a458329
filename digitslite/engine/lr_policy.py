"""Caffe's learning-rate policies (caffe-spec §4.5), as a pure function of the solver settings.

The schedule is a function of the completed-update count `iter` and, for "multistep", of the
`current_step` counter that Caffe keeps (and saves in the .solverstate): a multistep schedule
advances at most one step per call, so the counter is state, not something derivable from iter.
"""
import math
from collections.abc import Callable

import numpy as np

from digitslite.caffe import caffe_pb2
from digitslite.errors import UserError

# Each policy and the solver fields its formula reads, which Caffe gives no defaults.
POLICY_FIELDS: dict[str, tuple[str, ...]] = {
    "fixed": (), "step": ("gamma", "stepsize"), "exp": ("gamma",), "inv": ("gamma", "power"),
    "multistep": ("gamma", "stepvalue"), "poly": ("power",), "sigmoid": ("gamma", "stepsize"),
}
POLICIES = tuple(POLICY_FIELDS)


# Caffe's CHECKs in SGDSolver::GetLearningRate, per policy: (field, comparison, bound). poly's
# max_iter is digitslite's own: the schedule divides by it.
POLICY_LIMITS: dict[str, tuple[tuple[str, str, int], ...]] = {
    "step": (("stepsize", ">", 0), ("gamma", ">=", 0)),
    "exp": (("gamma", ">=", 0),),
    "inv": (("gamma", ">=", 0),),
    "multistep": (("gamma", ">=", 0),),
    "poly": (("max_iter", ">", 0),),
    "sigmoid": (("gamma", ">=", 0), ("stepsize", ">", 0)),
}
_HINTS = {"stepsize": "the number of iterations between rate drops",
          "gamma": "a factor of 0 or more, e.g. 0.1", "max_iter": "the number of updates to train for"}


class SolverFieldError(UserError):
    """A solver setting Caffe refuses; `field` is the SolverParameter field, for forms and APIs."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field

    def __reduce__(self):
        return type(self), (str(self), self.field)   # crosses process boundaries (rank workers)


def check_policy(solver: caffe_pb2.SolverParameter, source: str = "solver",
                 field_name: Callable[[str], str] = str) -> None:
    """Refuse a schedule Caffe would abort on ("Check failed"), before any training starts.

    `field_name` turns a SolverParameter field into the interface's word for it (a CLI flag).
    """
    policy = solver.lr_policy
    if policy not in POLICIES:
        shown = repr(policy) if policy else "none"
        raise SolverFieldError(f"{source}: {field_name('lr_policy')} is {shown}; set it to one of "
                               f"{', '.join(POLICIES)}", "lr_policy")
    for field, comparison, bound in POLICY_LIMITS.get(policy, ()):
        value, name = getattr(solver, field), field_name(field)
        if not (value > bound if comparison == ">" else value >= bound):
            raise SolverFieldError(f"{source}: lr_policy \"{policy}\" needs {name} {comparison} {bound} (it "
                                   f"is {value:g}; Caffe stops on it); set {name} to {_HINTS[field]}", field)


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
