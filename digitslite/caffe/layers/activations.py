"""Element-wise neurons: one bottom, a top of the same shape."""
from digitslite.caffe.footprint import pixelwise
from digitslite.caffe.geometry import RuleError, Shape
from digitslite.caffe.layers.record import Coord, Layer, LayerType, expect_bottoms, fmt, one_bottom_kept


def _prelu(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 1)
    if len(bottoms[0]) < 2:
        raise RuleError(f"needs a bottom with at least 2 axes (channels on axis 1), got {fmt(bottoms[0])}")
    return [bottoms[0]]


def _prelu_blobs(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """The slopes: one scalar when channel_shared, else one per channel."""
    return [()] if layer.prelu_param.channel_shared else [(bottoms[0][1],)]


def _positive_base(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """Exp and Log: base > 0, or -1 for e."""
    base = (layer.exp_param if layer.type == "Exp" else layer.log_param).base
    if not (base > 0 or base == -1):
        raise RuleError(f"base must be positive, or -1 for e; got {base}")
    return one_bottom_kept(layer, bottoms)


def _clip(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    if layer.clip_param.min > layer.clip_param.max:
        raise RuleError(f"clip_param.min {layer.clip_param.min} is above max {layer.clip_param.max}")
    return one_bottom_kept(layer, bottoms)


def _neuron(name: str, summary: str, params: tuple[str, ...] = (), tops=one_bottom_kept,
            coord: Coord = Coord.IDENTITY) -> LayerType:
    """An element-wise type; `coord` is IDENTITY for the types Caffe's coord_map passes through."""
    return LayerType(name, "activation", summary, params=params, tops=tops, coord=coord, footprint=pixelwise)


TYPES = (
    _neuron("ReLU", "max(x, 0), or a leaky slope for x < 0.", ("relu_param",)),
    _neuron("Sigmoid", "1 / (1 + exp(−x)).", ("sigmoid_param",)),
    _neuron("TanH", "tanh(x).", ("tanh_param",)),
    _neuron("ELU", "x for x > 0, α·(exp(x) − 1) otherwise.", ("elu_param",)),
    _neuron("Power", "(shift + scale·x)^power.", ("power_param",)),
    _neuron("Dropout", "Zeroes values at random while training, scaling the rest.", ("dropout_param",)),
    _neuron("AbsVal", "|x|."),
    _neuron("BNLL", "log(1 + exp(x)).", ()),
    _neuron("Exp", "base^(shift + scale·x); base -1 is e.", ("exp_param",), tops=_positive_base),
    _neuron("Log", "log_base(shift + scale·x); base -1 is e.", ("log_param",), tops=_positive_base),
    _neuron("Threshold", "1 where x > threshold, else 0 (no gradient).", ("threshold_param",)),
    _neuron("Clip", "x limited to [min, max].", ("clip_param",), tops=_clip, coord=Coord.NONE),
    _neuron("Swish", "x·sigmoid(beta·x).", ("swish_param",), coord=Coord.NONE),
    LayerType("PReLU", "activation", "ReLU with learned negative slopes, per channel or shared.",
              params=("prelu_param",), tops=_prelu, blobs=_prelu_blobs, coord=Coord.IDENTITY,
              footprint=pixelwise),
)
