"""Parameter and DummyData: layers that make their tops without bottoms (not fed from outside)."""
from digitslite.caffe.geometry import RuleError, Shape
from digitslite.caffe.layers.record import Layer, LayerType, expect_bottoms


def _parameter(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 0)
    return [tuple(layer.parameter_param.shape.dim)]


def _parameter_blobs(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    """The one blob, which is also the top."""
    return [tuple(layer.parameter_param.shape.dim)]


def _dummy_data(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    expect_bottoms(bottoms, 0)
    param, tops = layer.dummy_data_param, len(layer.top)
    if param.shape:
        shapes = [tuple(blob.dim) for blob in param.shape]
    else:
        legacy = [list(getattr(param, field)) for field in ("num", "channels", "height", "width")]
        if any(len(values) not in (1, tops) for values in legacy):
            raise RuleError("give dummy_data_param { shape { dim: ... } } per top "
                            "(or num/channels/height/width, each once or once per top)")
        shapes = [tuple(values[index if len(values) > 1 else 0] for values in legacy)
                  for index in range(tops)]
    if len(shapes) not in (1, tops):
        raise RuleError(f"{len(shapes)} shapes for {tops} tops; give 1 or one per top")
    if len(param.data_filler) not in (0, 1, tops):
        raise RuleError(f"{len(param.data_filler)} data_filler for {tops} tops; give 0, 1 or one per top")
    return [shapes[index if len(shapes) > 1 else 0] for index in range(tops)]


TYPES = (
    LayerType("Parameter", "data", "A learned blob of `shape` as its top (no bottoms).",
              params=("parameter_param",), tops=_parameter, blobs=_parameter_blobs),
    LayerType("DummyData", "data", "Tops of given shapes filled by `data_filler` (random ones redrawn).",
              params=("dummy_data_param",), tops=_dummy_data),
)
