"""Parameter blob shapes of each layer, in Caffe's blob order (caffe-spec §2.6, §5).

Loading weights, net surgery and the engine all pair blobs by (layer name, index), so the order
each layer type's record gives (`LayerType.blobs`) is the contract: Convolution/Deconvolution/
InnerProduct [weight, bias?], BatchNorm [mean sum, variance sum, scale factor], Scale
[scale, bias?], Bias [bias], PReLU [slopes].
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from digitslite.caffe import caffe_pb2
from digitslite.caffe.geometry import Shape
from digitslite.caffe.layers import LAYER_TYPES
from digitslite.caffe.shapes import infer_shapes

if TYPE_CHECKING:
    from digitslite.caffe.sourcemap import SourceMap


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
        shapes.setdefault(layer.name, LAYER_TYPES[layer.type].blobs(layer, entry.bottoms))
    return shapes
