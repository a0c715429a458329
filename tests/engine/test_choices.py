"""The torch-free choice tables (digitslite.engine.choices, lr_policy.POLICY_FIELDS) that the CLI's
help, the API's schemas and the pages list are the tables the engine acts on."""
import pytest

from digitslite.caffe import caffe_pb2
from digitslite.engine.choices import AMP_MODES, SOLVER_TYPES
from digitslite.engine.lr_policy import POLICIES, POLICY_FIELDS, learning_rate
from digitslite.engine.solver import RULES
from digitslite.engine.speed import AMP_DTYPES


def test_the_choices_are_the_engine_tables():
    assert tuple(RULES) == SOLVER_TYPES
    assert tuple(AMP_DTYPES) == AMP_MODES


BASE = {"base_lr": 0.1, "gamma": 0.5, "power": 2.0, "stepsize": 10, "stepvalue": [10], "max_iter": 100}
CHANGED = {"gamma": 0.25, "power": 3.0, "stepsize": 20, "stepvalue": [20]}
FIELDS = ("gamma", "power", "stepsize", "stepvalue")


def _rates(policy: str, **changes) -> list[float]:
    values = {**BASE, **changes}
    stepvalue = values.pop("stepvalue")
    solver = caffe_pb2.SolverParameter(lr_policy=policy, stepvalue=stepvalue, **values)
    step, rates = 0, []
    for iteration in range(0, 60, 5):
        rate, step = learning_rate(solver, iteration, step)
        rates.append(rate)
    return rates


@pytest.mark.parametrize("policy", POLICIES)
def test_a_policy_reads_exactly_the_fields_it_lists(policy):
    """Changing a listed field changes the schedule; changing another leaves it alone (so the form
    may hide it and the API may leave it optional)."""
    reads = {field for field in FIELDS if _rates(policy, **{field: CHANGED[field]}) != _rates(policy)}
    assert reads == set(POLICY_FIELDS[policy])
