"""The New model form's learning-rate preview: the rate Caffe's schedule gives over the training,
computed by the engine's own lr_policy (so the preview is the schedule the job will follow)."""
import bisect
from collections.abc import Mapping
from typing import Any, Literal

from digitslite.caffe import caffe_pb2
from digitslite.engine.lr_policy import POLICIES, SolverFieldError, check_policy, learning_rate
from digitslite.server.errors import ApiError
from digitslite.server.schemas.body import Query
from digitslite.server.schemas.types import number, sweep, whole

CURVE_POINTS = 101  # 0 to 100 % of the training, as DIGITS' preview


class LrCurveQuery(Query):
    """The New model form's solver fields, as far as the schedule reads them."""

    max_iter: whole(1)
    lr_policy: Literal[POLICIES] = "fixed"
    base_lr: sweep(number(positive=True)) = (0.01,)
    gamma: number(0) = 0.0
    power: number(0) = 0.0
    stepsize: whole(0) = 0
    stepvalue: sweep(whole(1)) = ()


def lr_curves(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One curve {base_lr, iterations, rates} per rate of the (comma-separated) base_lr field."""
    query = LrCurveQuery.parse(values)
    max_iter = query.max_iter
    solver = caffe_pb2.SolverParameter(
        lr_policy=query.lr_policy, max_iter=max_iter, gamma=query.gamma, power=query.power,
        stepsize=query.stepsize, stepvalue=sorted(query.stepvalue))
    try:
        check_policy(solver, "learning rate")
    except SolverFieldError as exc:
        raise ApiError(422, str(exc), exc.field) from None
    iterations = sorted({round(point * max_iter / (CURVE_POINTS - 1)) for point in range(CURVE_POINTS)})
    curves = []
    for base_lr in query.base_lr:
        solver.base_lr = base_lr
        # Multistep's counter would have advanced once per passed step value by this iteration.
        rates = [learning_rate(solver, iteration, bisect.bisect_right(solver.stepvalue, iteration))[0]
                 for iteration in iterations]
        curves.append({"base_lr": base_lr, "iterations": iterations, "rates": rates})
    return curves
