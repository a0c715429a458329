"""Softmax, ArgMax and Accuracy: class scores along an axis."""
from digitslite.caffe.footprint import Footprint, Footprints, union
from digitslite.caffe.geometry import RuleError, Shape, canonical_axis
from digitslite.caffe.layers.record import Layer, LayerType, count, expect_bottoms, fmt, up_to


def check_labels(scores: Shape, labels: Shape, axis_param: int) -> int:
    """Caffe's outer·inner label count rule; returns the canonical class axis."""
    axis = canonical_axis(axis_param, len(scores))
    positions = count(scores, 0, axis) * count(scores, axis + 1)
    if count(labels) != positions:
        raise RuleError(f"the labels {fmt(labels)} hold {count(labels)} values but the scores "
                        f"{fmt(scores)} have {positions} positions (all axes but the class axis {axis}); "
                        "give one label per position")
    return axis


def along_channels(axis: int, bottoms: Footprints) -> Footprint | None:
    """Pixel-wise when the layer works along the channel axis of 4-D blobs, else not local."""
    return union(bottoms) if bottoms and canonical_axis(axis, 4) == 1 else None


def _softmax(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1)
    canonical_axis(layer.softmax_param.axis, len(bottoms[0]))
    return [bottoms[0]]


def _argmax(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1)
    param, data = layer.argmax_param, bottoms[0]
    if param.top_k < 1:
        raise RuleError(f"top_k must be 1 or more, got {param.top_k}")
    if param.HasField("axis"):
        axis = canonical_axis(param.axis, len(data))
        if param.top_k > data[axis]:
            raise RuleError(f"top_k {param.top_k} exceeds the {data[axis]} values on axis {axis}")
        return [(*data[:axis], param.top_k, *data[axis + 1:])]
    if param.top_k > count(data, 1):
        raise RuleError(f"top_k {param.top_k} exceeds the {count(data, 1)} values per item")
    shape = [1] * max(3, len(data))
    shape[0], shape[1], shape[2] = data[0], 2 if param.out_max_val else 1, param.top_k
    return [tuple(shape)]


def _accuracy(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 2)
    scores = bottoms[0]
    axis = check_labels(scores, bottoms[1], layer.accuracy_param.axis)
    if layer.accuracy_param.top_k > scores[axis]:
        raise RuleError(f"top_k {layer.accuracy_param.top_k} exceeds the {scores[axis]} classes")
    return up_to([(), (scores[axis],)], layer)


TYPES = (
    LayerType("Softmax", "classification", "Softmax along `axis` (the channels by default).",
              params=("softmax_param",), tops=_softmax,
              footprint=lambda layer, bottoms: along_channels(layer.softmax_param.axis, bottoms)),
    LayerType("ArgMax", "classification", "The top_k classes (and optionally their scores).",
              params=("argmax_param",), tops=_argmax),
    LayerType("Accuracy", "evaluation", "Top-k accuracy against labels, optionally per class.",
              params=("accuracy_param",), tops=_accuracy),
)
