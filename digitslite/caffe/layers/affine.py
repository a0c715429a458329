"""Scale and Bias: a blob (learned, or bottom 1) broadcast along axes [axis, axis + num_axes)."""
from digitslite.caffe.footprint import pixelwise
from digitslite.caffe.geometry import RuleError, Shape, canonical_axis
from digitslite.caffe.layers.record import Coord, Layer, LayerType, expect_bottoms, fmt


def _param(layer: Layer):
    return layer.scale_param if layer.type == "Scale" else layer.bias_param


def _tops(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1, 2)
    param = _param(layer)
    data = bottoms[0]
    if len(bottoms) == 2:
        factor = bottoms[1]
        if factor:
            axis = canonical_axis(param.axis, len(data))
            if data[axis:axis + len(factor)] != factor:
                raise RuleError(f"the second bottom {fmt(factor)} must equal axes {axis}.. of the "
                                f"first {fmt(data)}; adjust axis")
        return [data]
    if param.num_axes < -1:
        raise RuleError(f"num_axes must be -1 (to the end) or more, got {param.num_axes}")
    if param.num_axes != 0:
        axis = canonical_axis(param.axis, len(data))
        if param.num_axes != -1 and axis + param.num_axes > len(data):
            raise RuleError(f"axis {param.axis} + num_axes {param.num_axes} runs past the "
                            f"{len(data)} axes of {fmt(data)}")
    return [data]


def covered_axes(layer: Layer, data: Shape) -> Shape:
    """The axes of `data` that a learned scale or bias covers: `num_axes` from `axis` (-1: all)."""
    param = _param(layer)
    if param.num_axes == 0:
        return ()
    axis = canonical_axis(param.axis, len(data))
    return data[axis:] if param.num_axes == -1 else data[axis:axis + param.num_axes]


def _scale_blobs(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """One bottom: a learned scale (+ bias); two bottoms: the scale is bottom 1, only the bias is
    learned and has bottom 1's shape."""
    if len(bottoms) == 2:
        return [bottoms[1]] if layer.scale_param.bias_term else []
    factor = covered_axes(layer, bottoms[0])
    return [factor, factor] if layer.scale_param.bias_term else [factor]


def _bias_blobs(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    return [] if len(bottoms) == 2 else [covered_axes(layer, bottoms[0])]


TYPES = (
    LayerType("Scale", "affine", "x·s (+ b): s learned or bottom 1, broadcast from `axis`.",
              params=("scale_param",), tops=_tops, blobs=_scale_blobs, coord=Coord.IDENTITY,
              footprint=pixelwise),
    LayerType("Bias", "affine", "x + b: b learned or bottom 1, broadcast from `axis`.",
              params=("bias_param",), tops=_tops, blobs=_bias_blobs, coord=Coord.IDENTITY,
              footprint=pixelwise),
)
