"""Parameter blob shapes of each layer, in Caffe's blob order (caffe-spec §2.6, §5).

Loading weights, net surgery and the engine all pair blobs by (layer name, index), so the order
here is the contract: Convolution/Deconvolution/InnerProduct [weight, bias?], BatchNorm
[mean sum, variance sum, scale factor], Scale [scale, bias?], Bias [bias], PReLU [slopes].
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from digitslite.caffe import caffe_pb2
from digitslite.caffe.shapes import Shape, canonical_axis, conv_window, infer_shapes

if TYPE_CHECKING:
    from digitslite.caffe.sourcemap import SourceMap

Layer = caffe_pb2.LayerParameter
_Rule = Callable[[Layer, list[Shape]], list[Shape]]


def _convolution(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """Convolution weight (O, C/group, k...); Deconvolution's is transposed: (C, O/group, k...)."""
    param, data = layer.convolution_param, bottoms[0]
    axis = canonical_axis(param.axis, len(data))
    kernel = conv_window(param, len(data) - axis - 1).kernel
    channels, outputs, group = data[axis], param.num_output, param.group
    if layer.type == "Deconvolution":
        weight = (channels, outputs // group, *kernel)
    else:
        weight = (outputs, channels // group, *kernel)
    return [weight, (outputs,)] if param.bias_term else [weight]


def _inner_product(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """Weight (O, K), or (K, O) when transposed, K = the bottom's count from `axis` on."""
    param = layer.inner_product_param
    inputs = math.prod(bottoms[0][canonical_axis(param.axis, len(bottoms[0])):])
    weight = (inputs, param.num_output) if param.transpose else (param.num_output, inputs)
    return [weight, (param.num_output,)] if param.bias_term else [weight]


def _batch_norm(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    channels = bottoms[0][1] if len(bottoms[0]) > 1 else 1
    return [(channels,), (channels,), (1,)]


def _covered_axes(param, data: Shape) -> Shape:
    """The axes of `data` that a learned scale or bias covers: `num_axes` from `axis` (-1: all)."""
    if param.num_axes == 0:
        return ()
    axis = canonical_axis(param.axis, len(data))
    return data[axis:] if param.num_axes == -1 else data[axis:axis + param.num_axes]


def _scale(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """One bottom: a learned scale (+ bias); two bottoms: the scale is bottom 1, only the bias is
    learned and has bottom 1's shape."""
    param = layer.scale_param
    if len(bottoms) == 2:
        return [bottoms[1]] if param.bias_term else []
    factor = _covered_axes(param, bottoms[0])
    return [factor, factor] if param.bias_term else [factor]


def _bias(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    return [] if len(bottoms) == 2 else [_covered_axes(layer.bias_param, bottoms[0])]


def _prelu(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    return [()] if layer.prelu_param.channel_shared else [(bottoms[0][1],)]


# The BVLC types added with the golden conformance set (issue 12), kept together for the per-type
# record refactoring.


def _embed(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """The lookup table (input_dim, num_output), then the bias (num_output)."""
    param = layer.embed_param
    table = (param.input_dim, param.num_output)
    return [table, (param.num_output,)] if param.bias_term else [table]


def _parameter(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    return [tuple(layer.parameter_param.shape.dim)]


def recurrent_shapes(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """RNN: W_xh, b_h, [W_xh_static], W_hh, W_ho, b_o; LSTM: W_xc, b_c, [W_xc_static], W_hc (4H rows:
    the i, f, o, g gates), the order of the parameters in Caffe's unrolled net."""
    outputs, inputs = layer.recurrent_param.num_output, math.prod(bottoms[0][2:])
    rows = 4 * outputs if layer.type == "LSTM" else outputs
    static = [(rows, math.prod(bottoms[2][1:]))] if len(bottoms) == 3 else []
    if layer.type == "LSTM":
        return [(rows, inputs), (rows,), *static, (rows, outputs)]
    return [(rows, inputs), (rows,), *static, (outputs, outputs), (outputs, outputs), (outputs,)]


_RULES: dict[str, _Rule] = {
    "Embed": _embed,
    "Parameter": _parameter,
    "RNN": recurrent_shapes,
    "LSTM": recurrent_shapes,
    "Convolution": _convolution,
    "Deconvolution": _convolution,
    "InnerProduct": _inner_product,
    "BatchNorm": _batch_norm,
    "Scale": _scale,
    "Bias": _bias,
    "PReLU": _prelu,
}


def param_shapes(
    net: caffe_pb2.NetParameter,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    source_map: SourceMap | None = None,
) -> dict[str, list[Shape]]:
    """Layer name -> its parameter blob shapes, for every layer of a filtered net ([] for layers
    without parameters). Of two layers with one name the first counts, as in Caffe's loading.
    The layer rules were checked by shape inference, so they cannot fail here."""
    shapes: dict[str, list[Shape]] = {}
    for layer, entry in zip(net.layer, infer_shapes(net, input_shapes, source_map), strict=True):
        rule = _RULES.get(layer.type)
        shapes.setdefault(layer.name, rule(layer, entry.bottoms) if rule else [])
    return shapes
