"""Convolution and Deconvolution: Caffe's window forms, output sizes and weight layouts; Im2col, the
columns a convolution multiplies."""
import math

from digitslite.caffe.footprint import Footprints, sliding, transposed
from digitslite.caffe.geometry import RuleError, Shape, Window, canonical_axis, conv_output_size, conv_window
from digitslite.caffe.layers.record import Coord, Layer, LayerType, expect_bottoms, fmt, same_shapes


def _window(layer: Layer, bottom: Shape | None) -> Window:
    """The window over the bottom's spatial axes (those after `axis`); without a bottom, over as
    many axes as the parameters give."""
    param = layer.convolution_param
    if bottom is None:
        return conv_window(param)
    return conv_window(param, len(bottom) - canonical_axis(param.axis, len(bottom)) - 1)


def _tops(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1, math.inf)
    param = layer.convolution_param
    data = same_shapes(bottoms)
    axis = canonical_axis(param.axis, len(data))
    window = _window(layer, data)
    if param.num_output == 0:
        raise RuleError("num_output is not set: give convolution_param { num_output: N }")
    channels, group = data[axis], param.group
    if group == 0 or channels % group or param.num_output % group:
        raise RuleError(f"group {group} must divide both the {channels} input channels and "
                        f"num_output {param.num_output}")
    sizes = []
    for index, size in enumerate(data[axis + 1:]):
        out = conv_output_size(size, window, index, transposed=layer.type == "Deconvolution")
        if out <= 0:
            extent, stride, pad = window.extent[index], window.stride[index], window.pad[index]
            raise RuleError(f"an input of size {size} gives no output with kernel extent {extent}, "
                            f"stride {stride}, pad {pad}; use a larger input or more padding")
        sizes.append(out)
    return [(*data[:axis], param.num_output, *sizes)] * len(bottoms)


def _blobs(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """Convolution weight (O, C/group, k...); Deconvolution's is transposed: (C, O/group, k...)."""
    param, data = layer.convolution_param, bottoms[0]
    kernel = _window(layer, data).kernel
    channels, outputs, group = data[canonical_axis(param.axis, len(data))], param.num_output, param.group
    if layer.type == "Deconvolution":
        weight = (channels, outputs // group, *kernel)
    else:
        weight = (outputs, channels // group, *kernel)
    return [weight, (outputs,)] if param.bias_term else [weight]


def _footprint(layer: Layer, bottoms: Footprints):
    if not bottoms or bottoms[0] is None or layer.convolution_param.axis != 1:
        return None
    window = conv_window(layer.convolution_param, 2)
    return (sliding if layer.type == "Convolution" else transposed)(bottoms[0], window)


def _im2col(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1)
    data = bottoms[0]
    axis = canonical_axis(layer.convolution_param.axis, len(data))
    if len(data) - axis - 1 != 2:
        raise RuleError(f"digitslite's Im2col works on 2 spatial axes; {fmt(data)} from axis {axis} has "
                        f"{len(data) - axis - 1}")
    window = _window(layer, data)
    sizes = []
    for index, size in enumerate(data[axis + 1:]):
        out = conv_output_size(size, window, index, transposed=False)
        if out <= 0:
            raise RuleError(f"an input of size {size} gives no column with kernel extent "
                            f"{window.extent[index]}, pad {window.pad[index]}")
        sizes.append(out)
    return [(*data[:axis], data[axis] * math.prod(window.kernel), *sizes)]


def _im2col_footprint(layer: Layer, bottoms: Footprints):
    if not bottoms or bottoms[0] is None or layer.convolution_param.axis != 1:
        return None
    return sliding(bottoms[0], conv_window(layer.convolution_param, 2))


TYPES = (
    LayerType("Convolution", "conv", "N-d convolution (cross-correlation) with groups and dilation.",
              params=("convolution_param",), tops=_tops, blobs=_blobs, window=_window,
              coord=Coord.WINDOW, footprint=_footprint),
    LayerType("Deconvolution", "deconv", "Transposed convolution (upsampling), weight (C, O/group, k...).",
              params=("convolution_param",), tops=_tops, blobs=_blobs, window=_window,
              coord=Coord.TRANSPOSED, footprint=_footprint),
    LayerType("Im2col", "conv", "The columns a 2-D convolution multiplies: (N, C·kh·kw, out_h, out_w).",
              params=("convolution_param",), tops=_im2col, window=_window, coord=Coord.WINDOW,
              footprint=_im2col_footprint),
)
