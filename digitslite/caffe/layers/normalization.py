"""LRN, BatchNorm and MVN: normalise each value by statistics of its neighbourhood, its channel or
its whole map."""
from digitslite.caffe import caffe_pb2
from digitslite.caffe.footprint import Footprints, pixelwise, sliding, union
from digitslite.caffe.geometry import RuleError, Shape, Window
from digitslite.caffe.layers.record import Coord, Layer, LayerType, expect_bottoms, fmt, one_bottom_kept


def _lrn(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1)
    if len(bottoms[0]) != 4:
        raise RuleError(f"needs a 4-axis bottom (N,C,H,W), got {fmt(bottoms[0])}")
    if layer.lrn_param.local_size % 2 == 0:
        raise RuleError(f"local_size must be odd, got {layer.lrn_param.local_size}")
    return [bottoms[0]]


def _lrn_footprint(layer: Layer, bottoms: Footprints):
    """ACROSS_CHANNELS reads one pixel of several channels; WITHIN_CHANNEL a local_size square."""
    if layer.lrn_param.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS:
        return union(bottoms)
    if not bottoms or bottoms[0] is None:
        return None
    size = layer.lrn_param.local_size
    return sliding(bottoms[0], Window((size, size), (1, 1), ((size - 1) // 2,) * 2, (1, 1)))


def _batch_norm_blobs(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """Mean sum, variance sum (one per channel) and the scale factor."""
    channels = bottoms[0][1] if len(bottoms[0]) > 1 else 1
    return [(channels,), (channels,), (1,)]


def _mvn(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1)
    needed = 1 if layer.mvn_param.across_channels else 2
    if len(bottoms[0]) < needed:
        raise RuleError(f"needs a bottom with at least {needed} axes, got {fmt(bottoms[0])}")
    return [bottoms[0]]


TYPES = (
    LayerType("LRN", "normalization", "Local response normalisation across or within channels.",
              params=("lrn_param",), tops=_lrn, coord=Coord.IDENTITY, footprint=_lrn_footprint),
    LayerType("BatchNorm", "normalization", "Per-channel normalisation by batch or stored statistics.",
              params=("batch_norm_param",), tops=one_bottom_kept, blobs=_batch_norm_blobs,
              coord=Coord.IDENTITY, footprint=pixelwise),
    # Caffe's coord_map passes MVN through, but each value reads its whole map: not local.
    LayerType("MVN", "normalization", "Subtracts the mean (and divides by the deviation) of each map.",
              params=("mvn_param",), tops=_mvn, coord=Coord.IDENTITY),
)
