"""Pooling: Caffe's window forms, global pooling and its output size (ceil, clipped when padded);
SPP, a pyramid of poolings; SegNet's Upsample, which undoes a MAX pooling by its mask."""
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


def spp_level(size: int, bins: int) -> tuple[int, int]:
    """Caffe's SPP window along one axis for `bins` bins: (kernel, pad) with kernel = ceil(size /
    bins), stride = kernel and pad = (kernel·bins − size + 1) // 2."""
    kernel = -(-size // bins)
    return kernel, (kernel * bins - size + 1) // 2


def _spp(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1)
    data, height = bottoms[0], layer.spp_param.pyramid_height
    if len(data) != 4:
        raise RuleError(f"needs a 4-axis bottom (N,C,H,W), got {fmt(data)}")
    if height < 1:
        raise RuleError("pyramid_height must be at least 1: give spp_param { pyramid_height: L }")
    if layer.spp_param.pool == caffe_pb2.SPPParameter.STOCHASTIC:
        raise RuleError("STOCHASTIC pooling is not supported; use pool: MAX or AVE")
    for level in range(height):
        for size in data[2:]:
            kernel, pad = spp_level(size, 2 ** level)
            if pad >= kernel:
                raise RuleError(f"level {level} pools {size} values into {2 ** level} bins with pad {pad} "
                                f"not below kernel {kernel}; use a lower pyramid_height or a larger input")
    if height == 1:
        return [(*data[:2], 1, 1)]
    return [(data[0], data[1] * sum(4 ** level for level in range(height)))]


def upsample_size(param: caffe_pb2.UpsampleParameter, height: int, width: int) -> tuple[int, int]:
    """SegNet's output size: upsample_h x upsample_w, else the input times scale_h/scale_w (or
    scale), less one on an axis whose pad_out is set (scale 2 only)."""
    if param.HasField("upsample_h") or param.HasField("upsample_w"):
        if not (param.HasField("upsample_h") and param.HasField("upsample_w")):
            raise RuleError("give both upsample_h and upsample_w")
        if param.upsample_h <= 1 or param.upsample_w <= 1:
            raise RuleError("upsample_h and upsample_w must be above 1")
        return param.upsample_h, param.upsample_w
    if param.HasField("scale_h") != param.HasField("scale_w") or (
            param.HasField("scale_h") and param.HasField("scale")):
        raise RuleError("give either scale, or both scale_h and scale_w")
    scales = (param.scale_h, param.scale_w) if param.HasField("scale_h") else (param.scale,) * 2
    if min(scales) <= 1:
        raise RuleError(f"the scale must be above 1, got {list(scales)}")
    pads = (param.pad_out_h, param.pad_out_w)
    if any(pad and scale != 2 for pad, scale in zip(pads, scales, strict=True)):
        raise RuleError("pad_out_h / pad_out_w only work with scale 2")
    return height * scales[0] - int(pads[0]), width * scales[1] - int(pads[1])


def _upsample(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 2)
    data, mask = bottoms
    if len(data) != 4 or mask != data:
        raise RuleError(f"needs an N,C,H,W bottom and a pooling mask of the same shape (the second top "
                        f"of a MAX Pooling), got {fmt(data)} and {fmt(mask)}")
    return [(*data[:2], *upsample_size(layer.upsample_param, *data[2:]))]


TYPES = (
    LayerType("Pooling", "pool", "MAX or AVE pooling over H×W (global too); MAX may output its mask.",
              params=("pooling_param",), tops=_tops, window=_window, coord=Coord.WINDOW,
              footprint=_footprint),
    LayerType("SPP", "pool", "Spatial pyramid pooling: levels of 1, 4, 16... bins, flattened and joined.",
              params=("spp_param",), tops=_spp),
    LayerType("Upsample", "pool", "SegNet's fork layer: puts each value back where its MAX pooling "
              "mask (bottom 1) found it.", params=("upsample_param",), tops=_upsample),
)
