"""Reduction: one value per leading position, from the axes from `axis` on."""
from digitslite.caffe.geometry import Shape, canonical_axis
from digitslite.caffe.layers.record import Layer, LayerType, expect_bottoms


def _tops(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1)
    data = bottoms[0]
    return [data[:canonical_axis(layer.reduction_param.axis, len(data))]]


TYPES = (
    LayerType("Reduction", "reduction", "coeff · SUM, ASUM, SUMSQ or MEAN over the axes from `axis` on.",
              params=("reduction_param",), tops=_tops),
)
