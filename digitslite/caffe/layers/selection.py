"""Filter and BatchReindex: pick items along axis 0 by data (a selector, or indices)."""
import math

from digitslite.caffe.geometry import RuleError, Shape
from digitslite.caffe.layers.record import Layer, LayerType, expect_bottoms, fmt


def _filter(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """Tops as large as the bottoms: the selected count is known only when the selector is read
    (Caffe's first set-up does the same)."""
    expect_bottoms(bottoms, 2, math.inf)
    *data, selector = bottoms
    if not selector or any(dim != 1 for dim in selector[1:]):
        raise RuleError(f"the selector (last bottom) {fmt(selector)} must be (N) or (N,1,...)")
    for shape in data:
        if not shape or shape[0] != selector[0]:
            raise RuleError(f"bottom {fmt(shape)} must have the selector's {selector[0]} items on axis 0")
    return data


def _batch_reindex(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 2)
    data, indices = bottoms
    if len(indices) != 1 or not data:
        raise RuleError(f"the indices (second bottom) must be 1-axis, got {fmt(indices)}")
    return [(indices[0], *data[1:])]


TYPES = (
    LayerType("Filter", "structure", "Keeps the items whose selector (last bottom) is non-zero.",
              tops=_filter),
    LayerType("BatchReindex", "structure", "top[i] = bottom[indices[i]] along axis 0.", tops=_batch_reindex),
)
