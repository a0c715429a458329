"""Pooling: Caffe's window forms, global pooling and its output size (ceil, clipped when padded)."""
from digitslite.caffe import caffe_pb2
from digitslite.caffe.footprint import Footprints, sliding
from digitslite.caffe.geometry import RuleError, Shape, Window, pool_pair, pool_window, pooled_size
from digitslite.caffe.layers.record import Coord, Layer, LayerType, expect_bottoms, fmt, up_to

Pool = caffe_pb2.PoolingParameter


def _window(layer: Layer, bottom: Shape | None) -> Window | None:
    """The window; a global pooling's covers the whole bottom (None when the bottom is unknown)."""
    param = layer.pooling_param
    if not param.global_pooling:
        return pool_window(param)
    if any(param.HasField(f) for f in ("kernel_size", "kernel_h", "kernel_w")):
        raise RuleError("global_pooling takes its kernel from the input: remove kernel_size")
    if any(pool_pair(param, "pad", 0)) or pool_pair(param, "stride", 1) != (1, 1):
        raise RuleError("global_pooling needs pad 0 and stride 1")
    return None if bottom is None else Window(kernel=tuple(bottom[2:]), stride=(1, 1), pad=(0, 0),
                                              dilation=(1, 1))


def _tops(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1)
    param, data = layer.pooling_param, bottoms[0]
    if len(data) != 4:
        raise RuleError(f"needs a 4-axis bottom (N,C,H,W), got {fmt(data)}")
    max_tops = 2 if param.pool == Pool.MAX else 1
    window = _window(layer, data)
    padded = any(window.pad)
    if padded and param.pool not in (Pool.MAX, Pool.AVE):
        raise RuleError("padding is only implemented for MAX and AVE pooling")
    if not param.global_pooling and any(p >= k for p, k in zip(window.pad, window.kernel, strict=True)):
        raise RuleError(f"pad {list(window.pad)} must be smaller than kernel {list(window.kernel)}")
    ceil = param.round_mode == Pool.CEIL
    sizes = []
    for size, kernel, stride, pad in zip(data[2:], window.kernel, window.stride, window.pad, strict=True):
        out = pooled_size(size, kernel, stride, pad, ceil, clip=padded)
        if out <= 0:
            raise RuleError(f"an input of size {size} gives no output with kernel {kernel}, "
                            f"stride {stride}, pad {pad}")
        sizes.append(out)
    return up_to([data[:2] + tuple(sizes)] * max_tops, layer)


def _footprint(layer: Layer, bottoms: Footprints):
    if not bottoms or bottoms[0] is None or layer.pooling_param.global_pooling:
        return None
    return sliding(bottoms[0], pool_window(layer.pooling_param))


TYPES = (
    LayerType("Pooling", "pool", "MAX or AVE pooling over H×W (global too); MAX may output its mask.",
              params=("pooling_param",), tops=_tops, window=_window, coord=Coord.WINDOW,
              footprint=_footprint),
)
