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


def _neuron(name: str, summary: str, params: tuple[str, ...] = ()) -> LayerType:
    return LayerType(name, "activation", summary, params=params, tops=one_bottom_kept,
                     coord=Coord.IDENTITY, footprint=pixelwise)


TYPES = (
    _neuron("ReLU", "max(x, 0), or a leaky slope for x < 0.", ("relu_param",)),
    _neuron("Sigmoid", "1 / (1 + exp(−x)).", ("sigmoid_param",)),
    _neuron("TanH", "tanh(x).", ("tanh_param",)),
    _neuron("ELU", "x for x > 0, α·(exp(x) − 1) otherwise.", ("elu_param",)),
    _neuron("Power", "(shift + scale·x)^power.", ("power_param",)),
    _neuron("Dropout", "Zeroes values at random while training, scaling the rest.", ("dropout_param",)),
    LayerType("PReLU", "activation", "ReLU with learned negative slopes, per channel or shared.",
              params=("prelu_param",), tops=_prelu, blobs=_prelu_blobs, coord=Coord.IDENTITY,
              footprint=pixelwise),
)
