"""Eltwise: PROD, SUM (with coefficients) or MAX of same-shaped bottoms."""
import math

from digitslite.caffe import caffe_pb2
from digitslite.caffe.footprint import pixelwise
from digitslite.caffe.geometry import RuleError, Shape
from digitslite.caffe.layers.record import Coord, Layer, LayerType, expect_bottoms, same_shapes


def _tops(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 2, math.inf)
    param = layer.eltwise_param
    if param.coeff:
        if param.operation != caffe_pb2.EltwiseParameter.SUM:
            raise RuleError("coeff is only allowed with operation SUM")
        if len(param.coeff) != len(bottoms):
            raise RuleError(f"{len(param.coeff)} coeff value(s) for {len(bottoms)} bottoms; "
                            "give one per bottom")
    return [same_shapes(bottoms)]


TYPES = (
    LayerType("Eltwise", "merge", "PROD, SUM (with coeff) or MAX of same-shaped bottoms.",
              params=("eltwise_param",), tops=_tops, coord=Coord.IDENTITY, footprint=pixelwise),
)
