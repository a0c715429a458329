"""What each layer of a filtered net costs at given input shapes: forward FLOPs, the bytes of the
activations it produces (float32), and its parameter count. Estimates for planning (pipeline
partitioning, `digitslite net partition`), not measurements: a multiply-add counts 2 FLOPs, data
movement (Crop, Concat, Reshape, Split, Im2col) counts none, other layers one FLOP per value they produce.
"""
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from digitslite.caffe import caffe_pb2
from digitslite.caffe.geometry import Shape, canonical_axis
from digitslite.caffe.layers import LAYER_TYPES, Source
from digitslite.caffe.paramshapes import param_shapes
from digitslite.caffe.shapes import LayerShapes, infer_shapes
from digitslite.caffe.sourcemap import SourceMap

BYTES_PER_VALUE = 4      # float32 activations
_MOVING_FAMILIES = ("structure", "crop")   # and Concat, Im2col: they move values, they compute none


@dataclass(frozen=True)
class LayerCost:
    name: str
    type: str
    flops: int
    activation_bytes: int
    parameters: int


def _window_flops(layer: caffe_pb2.LayerParameter, bottom: Shape, top: Shape) -> int:
    """Convolution, Deconvolution (multiply-adds over their kernel) and Pooling (one per window value)."""
    window = LAYER_TYPES[layer.type].window(layer, bottom)
    if layer.type == "Pooling":
        return math.prod(top) * math.prod(window.kernel if window is not None else bottom[2:])
    param = layer.convolution_param
    axis = canonical_axis(param.axis, len(bottom))
    kernel = math.prod(window.kernel)
    if layer.type == "Deconvolution":   # every input value scatters into O/group · k outputs
        return 2 * math.prod(bottom) * (param.num_output // param.group) * kernel
    return 2 * math.prod(top) * (bottom[axis] // param.group) * kernel


def _flops(layer: caffe_pb2.LayerParameter, shapes: LayerShapes) -> int:
    record = LAYER_TYPES[layer.type]
    produced = sum(math.prod(top) for top in shapes.tops)
    moves = record.family in _MOVING_FAMILIES or layer.type in ("Concat", "Im2col")
    if record.source is not Source.NONE or moves:
        return 0
    if record.window is not None:
        return _window_flops(layer, shapes.bottoms[0], shapes.tops[0])
    if layer.type == "InnerProduct":
        return 2 * math.prod(shapes.bottoms[0]) * layer.inner_product_param.num_output
    if layer.type == "Eltwise":
        return produced * max(1, len(shapes.bottoms) - 1)
    return produced


def layer_costs(net: caffe_pb2.NetParameter, input_shapes: Mapping[str, Sequence[int]] | None = None,
                source_map: SourceMap | None = None) -> list[LayerCost]:
    """One LayerCost per layer of `net` (filtered; Split layers in or not), in order."""
    shapes = infer_shapes(net, input_shapes, source_map)
    params = param_shapes(net, input_shapes, source_map)
    costs = []
    for layer, entry in zip(net.layer, shapes, strict=True):
        moved = layer.type == "Split"     # a Split's tops alias its bottom
        values = 0 if moved else sum(math.prod(top) for top in entry.tops)
        costs.append(LayerCost(layer.name, layer.type, _flops(layer, entry), values * BYTES_PER_VALUE,
                               sum(math.prod(shape) for shape in params.get(layer.name, []))))
    return costs
