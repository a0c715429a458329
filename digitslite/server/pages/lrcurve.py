"""The New model form's learning-rate preview: the rate Caffe's schedule gives over the training,
computed by the engine's own lr_policy (so the preview is the schedule the job will follow)."""
import bisect
from typing import Any

from digitslite.caffe import caffe_pb2
from digitslite.engine.lr_policy import POLICIES, SolverFieldError, check_policy, learning_rate
from digitslite.server.errors import ApiError
from digitslite.server.fields import Fields

CURVE_POINTS = 101  # 0 to 100 % of the training, as DIGITS' preview


def lr_curves(fields: Fields) -> list[dict[str, Any]]:
    """One curve {base_lr, iterations, rates} per rate of the (comma-separated) base_lr field."""
    max_iter = fields.integer("max_iter", required=True, minimum=1)
    solver = caffe_pb2.SolverParameter(
        lr_policy=fields.choice("lr_policy", POLICIES, "fixed"), max_iter=max_iter,
        gamma=fields.number("gamma", 0.0, minimum=0), power=fields.number("power", 0.0, minimum=0),
        stepsize=fields.integer("stepsize", 0, minimum=0),
        stepvalue=sorted(fields.integers("stepvalue", minimum=1)))
    try:
        check_policy(solver, "learning rate")
    except SolverFieldError as exc:
        raise ApiError(422, str(exc), exc.field) from None
    iterations = sorted({round(point * max_iter / (CURVE_POINTS - 1)) for point in range(CURVE_POINTS)})
    curves = []
    for base_lr in fields.numbers("base_lr", positive=True) or [0.01]:
        solver.base_lr = base_lr
        # Multistep's counter would have advanced once per passed step value by this iteration.
        rates = [learning_rate(solver, iteration, bisect.bisect_right(solver.stepvalue, iteration))[0]
                 for iteration in iterations]
        curves.append({"base_lr": base_lr, "iterations": iterations, "rates": rates})
    return curves
