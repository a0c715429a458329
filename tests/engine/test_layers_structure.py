"""Crop (§7.5), Concat, Slice, Flatten, Reshape (§2.6, §7.13) and Silence."""
import pytest
import torch

from digitslite.errors import UserError
from tests.engine.test_layers_support import gradcheck_layer, make_layer


def crop(body: str, source, reference):
    return make_layer(f'name: "crop" type: "Crop" crop_param {{ {body} }}', source, reference)


def run_crop(body, source, reference):
    data = torch.randn(source)
    return data, crop(body, source, reference)(data, torch.zeros(reference))[0]


def test_crop_axis_0_without_offset_takes_the_reference_shape():
    data, top = run_crop("axis: 0", (2, 4, 5, 4), (2, 3, 4, 2))
    assert torch.equal(top, data[:2, :3, :4, :2])


@pytest.mark.parametrize(("body", "reference", "expected"), [
    ("", (2, 3, 4, 2), (2, 4, 4, 2)),
    ("axis: -1", (2, 3, 4, 2), (2, 4, 5, 2)),
    ("", (2, 5, 4, 2), (2, 4, 4, 2)),
])
def test_crop_shapes(body, reference, expected):
    assert run_crop(body, (2, 4, 5, 4), reference)[1].shape == expected


def test_crop_with_offsets_per_axis():
    data, top = run_crop("axis: 0 offset: [0, 1, 1, 2]", (2, 4, 5, 4), (2, 3, 4, 2))
    assert torch.equal(top, data[0:2, 1:4, 1:5, 2:4])
    data, top = run_crop("axis: 2 offset: [1, 2]", (2, 4, 5, 4), (2, 3, 4, 2))
    assert torch.equal(top, data[:, :, 1:5, 2:4])


def test_crop_5d():
    data, top = run_crop("axis: 2 offset: [1, 2, 0]", (2, 4, 5, 4, 2), (2, 3, 4, 2, 1))
    assert top.shape == (2, 4, 4, 2, 1) and torch.equal(top, data[:, :, 1:5, 2:4, 0:1])


def test_one_offset_applies_to_every_cropped_axis():
    data, top = run_crop("offset: 1", (1, 1, 6, 6), (1, 1, 3, 4))
    assert torch.equal(top, data[:, :, 1:4, 1:5])


def test_crop_gradient_fills_the_window_and_never_reaches_the_reference():
    data = torch.randn(2, 4, 5, 4, requires_grad=True)
    reference = torch.zeros(2, 3, 4, 2, requires_grad=True)
    (top,) = crop("axis: 2 offset: [1, 2]", (2, 4, 5, 4), (2, 3, 4, 2))(data, reference)
    top.sum().backward()
    expected = torch.zeros(2, 4, 5, 4)
    expected[:, :, 1:5, 2:4] = 1
    assert torch.equal(data.grad, expected) and reference.grad is None
    gradcheck_layer(crop("axis: 2 offset: [1, 2]", (2, 4, 5, 4), (2, 3, 4, 2)), data.detach(),
                    torch.zeros(2, 3, 4, 2), wrt=(0,))


@pytest.mark.parametrize(("body", "reference", "message"), [
    ("offset: [1, 2, 3]", (2, 3, 4, 2), "offset has 3 values for 2 cropped axes"),
    ("offset: 2", (2, 3, 4, 3), "the reference is larger"),
    ("axis: 5", (2, 3, 4, 2), "out of range"),
])
def test_crop_errors(body, reference, message):
    with pytest.raises(UserError, match=message):
        crop(body, (2, 4, 5, 4), reference)


def concat(body: str, *shapes):
    return make_layer(f'name: "cat" type: "Concat" concat_param {{ {body} }}', *shapes)


@pytest.mark.parametrize(("body", "shapes", "expected"), [
    ("axis: 0", [(2, 3, 6, 5), (5, 3, 6, 5)], (7, 3, 6, 5)),
    ("", [(2, 3, 6, 5), (2, 5, 6, 5)], (2, 8, 6, 5)),
    ("axis: -3", [(2, 3, 6, 5), (2, 5, 6, 5)], (2, 8, 6, 5)),
    ("concat_dim: 0", [(2, 3, 6, 5), (5, 3, 6, 5)], (7, 3, 6, 5)),
])
def test_concat_places_each_bottom_in_its_slice(body, shapes, expected):
    bottoms = [torch.full(shape, float(index + 1)) for index, shape in enumerate(shapes)]
    (top,) = concat(body, *shapes)(*bottoms)
    assert top.shape == expected
    axis = next(a for a in range(4) if expected[a] != shapes[0][a])
    first, second = top.split([shapes[0][axis], shapes[1][axis]], dim=axis)
    assert first.eq(1).all() and second.eq(2).all()


def test_single_bottom_concat_is_identity():
    x = torch.randn(2, 3)
    assert torch.equal(concat("", (2, 3))(x)[0], x)


def test_concat_gradient_slices_back():
    gradcheck_layer(concat("", (1, 2, 3), (1, 4, 3)), torch.randn(1, 2, 3), torch.randn(1, 4, 3))


@pytest.mark.parametrize(("body", "shapes", "message"), [
    ("", [(2, 3, 6, 5), (5, 3, 6, 5)], "bottoms may differ only on axis 1"),
    ("axis: 1 concat_dim: 1", [(2, 3), (2, 3)], "give either axis or concat_dim"),
])
def test_concat_errors(body, shapes, message):
    with pytest.raises(UserError, match=message):
        concat(body, *shapes)


def slice_layer(body: str, tops: int, shape=(6, 12, 2, 3)):
    top_lines = " ".join(f'top: "t{i}"' for i in range(tops))
    return make_layer(f'name: "s" type: "Slice" {top_lines} slice_param {{ {body} }}', shape)


def test_slice_into_equal_pieces_along_axis_0():
    x = torch.randn(6, 12, 2, 3)
    tops = slice_layer("axis: 0", 3)(x)
    assert [t.shape[0] for t in tops] == [2, 2, 2]
    assert torch.equal(torch.cat(tops, dim=0), x)


def test_slice_at_points_on_channels():
    x = torch.randn(6, 12, 2, 3)
    first, second = slice_layer("slice_point: 3", 2)(x)
    assert torch.equal(first, x[:, :3]) and torch.equal(second, x[:, 3:])
    assert [t.shape[1] for t in slice_layer("slice_dim: 1 slice_point: [2, 7]", 3)(x)] == [2, 5, 5]


def test_slice_gradient():
    gradcheck_layer(slice_layer("slice_point: [1, 3]", 3, (1, 4, 2)), torch.randn(1, 4, 2))


@pytest.mark.parametrize(("body", "tops", "message"), [
    ("", 5, "does not split evenly into 5 tops"),
    ("slice_point: [3, 2]", 3, r"slice_point \[3, 2\] must increase strictly"),
    ("slice_point: 3", 3, r"1 slice_point value\(s\) for 3 tops"),
])
def test_slice_errors(body, tops, message):
    with pytest.raises(UserError, match=message):
        slice_layer(body, tops)


@pytest.mark.parametrize(("body", "expected"), [
    ("", (2, 90)), ("axis: 2", (2, 3, 30)), ("end_axis: -2", (2, 18, 5)), ("axis: 0 end_axis: -2", (36, 5)),
])
def test_flatten_shapes(body, expected):
    x = torch.randn(2, 3, 6, 5)
    (top,) = make_layer(f'name: "f" type: "Flatten" flatten_param {{ {body} }}', (2, 3, 6, 5))(x)
    assert top.shape == expected and torch.equal(top.flatten(), x.flatten())


@pytest.mark.parametrize(("body", "expected"), [
    ("shape { dim: [0, -1, 1, 1] }", (2, 90, 1, 1)),
    ("shape { dim: [0, 0, 0, 0] }", (2, 3, 6, 5)),
    ("shape { dim: [0, 3, 10, -1] }", (2, 3, 10, 3)),
    ("axis: 1 shape { dim: [3, 10, -1] }", (2, 3, 10, 3)),
    ("axis: 0 num_axes: 0 shape { dim: [1, 1, 1] }", (1, 1, 1, 2, 3, 6, 5)),
    ("axis: 2 num_axes: 0 shape { dim: [1, 1, 1] }", (2, 3, 1, 1, 1, 6, 5)),
    ("axis: -1 num_axes: 0 shape { dim: [1, 1, 1] }", (2, 3, 6, 5, 1, 1, 1)),
    ("axis: 1 num_axes: 2 shape { dim: -1 }", (2, 18, 5)),
])
def test_reshape_shapes(body, expected):
    x = torch.randn(2, 3, 6, 5)
    (top,) = make_layer(f'name: "r" type: "Reshape" reshape_param {{ {body} }}', (2, 3, 6, 5))(x)
    assert top.shape == expected and torch.equal(top.flatten(), x.flatten())


@pytest.mark.parametrize(("body", "message"), [
    ("shape { dim: [-1, -1] }", "at most one dim may be -1"),
    ("shape { dim: [7, -1] }", "cannot infer"),
    ("shape { dim: [2, 3] }", "holds 6 elements where the bottom"),
    ("axis: 3 shape { dim: [0, 0] }", "no axis 4"),
    ("axis: 1 num_axes: 5 shape { dim: 1 }", "num_axes 5"),
])
def test_reshape_errors(body, message):
    with pytest.raises(UserError, match=message):
        make_layer(f'name: "r" type: "Reshape" reshape_param {{ {body} }}', (2, 3, 6, 5))


def test_silence_produces_nothing():
    assert make_layer('name: "s" type: "Silence"', (2, 3), (4,))(torch.zeros(2, 3), torch.zeros(4)) == ()
