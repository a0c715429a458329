"""Fillers: caffe-spec §3 formulas and the §7.10 (test_filler.cpp) properties."""
import math

import pytest
import torch
from google.protobuf import text_format

from digitslite.caffe import caffe_pb2
from digitslite.engine.fillers import fill
from digitslite.errors import UserError

SHAPES = [(2, 3, 4, 5), (15,), (8, 3), (2, 3, 4, 5, 2)]


def filler(text: str = "") -> caffe_pb2.FillerParameter:
    return text_format.Parse(text, caffe_pb2.FillerParameter())


def filled(shape, text: str, seed: int = 1701) -> torch.Tensor:
    return fill(torch.empty(shape), filler(text), torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shape", SHAPES)
def test_constant_fills_every_element(shape):
    assert torch.equal(filled(shape, 'type: "constant" value: 10'), torch.full(shape, 10.0))


def test_an_absent_filler_is_constant_zero():
    assert torch.equal(fill(torch.ones(3, 2), caffe_pb2.FillerParameter()), torch.zeros(3, 2))


@pytest.mark.parametrize("shape", SHAPES)
def test_uniform_stays_in_range(shape):
    values = filled(shape, 'type: "uniform" min: 1 max: 2')
    assert values.min() >= 1 and values.max() <= 2 and values.std() > 0


@pytest.mark.parametrize("shape", SHAPES)
def test_positive_unitball_rows_sum_to_one(shape):
    values = filled(shape, 'type: "positive_unitball"')
    assert values.min() >= 0 and values.max() <= 1
    torch.testing.assert_close(values.reshape(shape[0], -1).sum(dim=1), torch.ones(shape[0]),
                               atol=1e-3, rtol=0)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (125,), (8, 15), (2, 3, 4, 5, 2)])
def test_gaussian_mean_and_variance(shape):
    values = torch.stack([filled(shape, 'type: "gaussian" mean: 10 std: 0.1', seed) for seed in range(100)])
    assert abs(values.mean().item() - 10) < 3 * 0.1 / math.sqrt(values.numel())
    assert 0.01 / 1.1 < values.var().item() < 0.01 * 1.1


def test_sparse_gaussian_keeps_about_sparse_over_num_outputs():
    values = filled((1000, 50), 'type: "gaussian" std: 1 sparse: 250')
    kept = (values != 0).double().mean().item()
    assert abs(kept - 0.25) < 0.01


@pytest.mark.parametrize(("norm", "n"), [("FAN_IN", 40), ("FAN_OUT", 20000), ("AVERAGE", 10020)])
def test_xavier_is_uniform_with_bound_sqrt_3_over_n(norm, n):
    values = filled((1000, 2, 4, 5), f'type: "xavier" variance_norm: {norm}')
    bound = math.sqrt(3 / n)
    assert values.abs().max() <= bound
    assert values.abs().max() > 0.99 * bound
    assert abs(values.mean().item()) < 0.01 * bound
    assert values.std().item() == pytest.approx(math.sqrt(1 / n), rel=0.02)


@pytest.mark.parametrize(("norm", "n"), [("FAN_IN", 40), ("FAN_OUT", 20000), ("AVERAGE", 10020)])
def test_msra_is_gaussian_with_std_sqrt_2_over_n(norm, n):
    values = filled((1000, 2, 4, 5), f'type: "msra" variance_norm: {norm}')
    assert abs(values.mean().item()) < 0.02 * math.sqrt(2 / n)
    assert values.std().item() == pytest.approx(math.sqrt(2 / n), rel=0.02)


@pytest.mark.parametrize("kind", ["xavier", "msra"])
@pytest.mark.parametrize("shape", [(25,), (8, 3), (2, 3, 4, 5, 2)])
def test_fan_based_fillers_accept_any_rank(kind, shape):
    assert torch.isfinite(filled(shape, f'type: "{kind}"')).all()


def test_fans_follow_caffe_literal_definition_for_a_1d_blob():
    # fan_in = count / shape(0) = 1 for a 1-D blob, so xavier's bound is sqrt(3).
    values = filled((10000,), 'type: "xavier"')
    assert 0.95 * math.sqrt(3) < values.abs().max() <= math.sqrt(3)


# Kernel rows derived in caffe-spec §3 from f = ceil(K/2), c = (K − 1)/(2f).
BILINEAR_ROWS = {
    2: [0.5, 0.5],
    3: [0.5, 1, 0.5],
    4: [0.25, 0.75, 0.75, 0.25],
    5: [1 / 3, 2 / 3, 1, 2 / 3, 1 / 3],
    6: [1 / 6, 1 / 2, 5 / 6, 5 / 6, 1 / 2, 1 / 6],
    7: [0.25, 0.5, 0.75, 1, 0.75, 0.5, 0.25],
    8: [0.125, 0.375, 0.625, 0.875, 0.875, 0.625, 0.375, 0.125],
}


@pytest.mark.parametrize("size", sorted(BILINEAR_ROWS))
def test_bilinear_kernel_is_the_outer_product_of_the_spec_rows(size):
    row = torch.tensor(BILINEAR_ROWS[size])
    values = filled((3, 2, size, size), 'type: "bilinear"')
    expected = torch.outer(row, row).expand(3, 2, size, size)
    torch.testing.assert_close(values, expected)


def test_bilinear_needs_a_square_4d_blob():
    with pytest.raises(UserError, match="square kernel"):
        filled((2, 2, 3, 4), 'type: "bilinear"')


def test_unknown_filler_type_is_a_user_error():
    with pytest.raises(UserError, match="filler type 'glorot' is unknown"):
        filled((2, 2), 'type: "glorot"')


def test_sparse_is_refused_outside_gaussian():
    with pytest.raises(UserError, match="sparse"):
        filled((2, 2), 'type: "uniform" sparse: 1')


def test_sparse_equal_to_the_outputs_keeps_every_weight():
    assert (filled((50, 40), 'type: "gaussian" std: 1 sparse: 50') != 0).all()


def test_sparse_above_the_outputs_is_refused_naming_the_layer_and_field():
    context = "layer 'ip1' (InnerProduct) weight_filler"
    expected = r"layer 'ip1' \(InnerProduct\) weight_filler: sparse 51 .* 50 outputs"
    with pytest.raises(UserError, match=expected):
        fill(torch.empty(50, 40), filler('type: "gaussian" sparse: 51'), context=context)


def test_the_same_seed_gives_the_same_values():
    def draw(seed):
        return filled((4, 4), 'type: "gaussian"', seed=seed)

    assert torch.equal(draw(3), draw(3))
    assert not torch.equal(draw(3), draw(4))
