"""Caffe's learning-rate policies against the values of caffe-spec §4.5 (derived by hand there)."""
import pytest

from digitslite.caffe import caffe_pb2
from digitslite.engine.lr_policy import learning_rate
from digitslite.errors import UserError


def solver(**fields) -> caffe_pb2.SolverParameter:
    return caffe_pb2.SolverParameter(**fields)


def rate_at(param: caffe_pb2.SolverParameter, iteration: int) -> float:
    return learning_rate(param, iteration, 0)[0]


def test_fixed_is_base_lr_at_every_iteration():
    param = solver(lr_policy="fixed", base_lr=0.01)
    assert [rate_at(param, i) for i in (0, 1, 10**6)] == [pytest.approx(0.01)] * 3


@pytest.mark.parametrize(("iteration", "expected"), [(0, 0.01), (100, 0.0099257), (1000, 0.0093101),
                                                     (10000, 0.0059460)])
def test_inv_matches_the_spec_vectors(iteration, expected):
    param = solver(lr_policy="inv", base_lr=0.01, gamma=1e-4, power=0.75)
    assert rate_at(param, iteration) == pytest.approx(expected, rel=1e-4)


def test_step_drops_by_gamma_exactly_at_stepsize_and_reports_the_step_counter():
    param = solver(lr_policy="step", base_lr=0.01, gamma=0.1, stepsize=100000)
    assert rate_at(param, 99999) == pytest.approx(0.01)
    assert learning_rate(param, 100000, 0) == (pytest.approx(0.001), 1)
    assert learning_rate(param, 250000, 0)[1] == 2


def test_exp_is_base_times_gamma_to_the_iteration():
    param = solver(lr_policy="exp", base_lr=0.5, gamma=0.9)
    assert rate_at(param, 3) == pytest.approx(0.5 * 0.729)


def test_poly_matches_the_spec_vector_and_ends_at_zero():
    param = solver(lr_policy="poly", base_lr=0.01, max_iter=10000, power=0.9)
    assert rate_at(param, 5000) == pytest.approx(0.0053589, rel=1e-4)
    assert rate_at(param, 10000) == 0


@pytest.mark.parametrize(("iteration", "expected"), [(0, 6.69e-5), (5000, 0.005)])
def test_sigmoid_matches_the_spec_vectors(iteration, expected):
    param = solver(lr_policy="sigmoid", base_lr=0.01, gamma=0.001, stepsize=5000)
    assert rate_at(param, iteration) == pytest.approx(expected, rel=1e-3)


def test_multistep_advances_the_counter_at_each_stepvalue():
    param = solver(lr_policy="multistep", base_lr=1.0, gamma=0.5, stepvalue=[3, 5])
    step, rates = 0, []
    for iteration in range(7):
        rate, step = learning_rate(param, iteration, step)
        rates.append(rate)
    assert rates == [1, 1, 1, 0.5, 0.5, 0.25, 0.25]
    assert step == 2


def test_multistep_advances_at_most_one_step_per_call_like_caffe():
    # Jumping past both step values (e.g. a counter restored as 0 at iteration 10) moves one step.
    param = solver(lr_policy="multistep", base_lr=1.0, gamma=0.5, stepvalue=[3, 5])
    assert learning_rate(param, 10, 0) == (0.5, 1)
    assert learning_rate(param, 10, 1) == (0.25, 2)


def test_rate_is_rounded_to_float32_like_caffes_dtype():
    rate = rate_at(solver(lr_policy="fixed", base_lr=0.1), 0)
    assert rate == 0.10000000149011612


@pytest.mark.parametrize(("fields", "message"), [
    ({}, "lr_policy is none"),
    ({"lr_policy": "cosine"}, "'cosine'"),
    ({"lr_policy": "step"}, "stepsize > 0"),
    ({"lr_policy": "poly", "power": 1.0}, "max_iter > 0"),
])
def test_unusable_policies_are_refused_with_the_fix(fields, message):
    with pytest.raises(UserError, match=message):
        learning_rate(solver(base_lr=0.1, **fields), 0, 0)


@pytest.mark.parametrize(("fields", "message"), [   # Caffe's CHECK_GE(gamma, 0) / CHECK_GT(stepsize, 0)
    ({"lr_policy": "exp", "gamma": -0.1}, 'lr_policy "exp" needs gamma >= 0'),
    ({"lr_policy": "inv", "gamma": -0.1, "power": 1.0}, 'lr_policy "inv" needs gamma >= 0'),
    ({"lr_policy": "multistep", "gamma": -0.1}, 'lr_policy "multistep" needs gamma >= 0'),
    ({"lr_policy": "step", "gamma": -0.1, "stepsize": 5}, 'lr_policy "step" needs gamma >= 0'),
    ({"lr_policy": "sigmoid", "gamma": -0.1, "stepsize": 5}, 'lr_policy "sigmoid" needs gamma >= 0'),
    ({"lr_policy": "sigmoid", "gamma": 0.1}, 'lr_policy "sigmoid" needs stepsize > 0'),
])
def test_values_caffe_stops_on_are_refused_naming_the_field(fields, message):
    with pytest.raises(UserError, match=message):
        learning_rate(solver(base_lr=0.1, **fields), 0, 0)


def test_a_gamma_of_zero_is_what_caffe_accepts():
    assert rate_at(solver(lr_policy="exp", base_lr=0.1, gamma=0.0), 0) == pytest.approx(0.1)
