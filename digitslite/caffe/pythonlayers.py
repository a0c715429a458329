"""Python layers: the FCN reference repository's data layers are bound to a digitslite dataset; any
other Python layer is refused, naming its module and class.

voc_layers.VOCSegDataLayer / SBDDSegDataLayer and siftflow_layers.SIFTFlowSegDataLayer read one
image and its label map per batch, subtract a BGR mean given in param_str, and feed the tops
(data, label). digitslite reads the same pairs from the dataset's LMDBs: the layer becomes a Data
layer with the same name, tops and include/exclude rules, batch size 1, the mean as mean_value,
and an empty source (train_db in TRAIN, val_db in TEST, as DIGITS fills it). A layer without
rules is included in the phase its param_str split names ("train" TRAIN, any other TEST), which is
the net FCN's solver builds it in (train_net, test_net), so an all-in-one net can hold both.
"""
import ast

from digitslite.caffe import caffe_pb2
from digitslite.caffe.sourcemap import SourceMap
from digitslite.errors import UserError

# (module, class) of the known data layers -> how many of their tops a dataset can feed
KNOWN_DATA_LAYERS = {("voc_layers", "VOCSegDataLayer"): 2, ("voc_layers", "SBDDSegDataLayer"): 2,
                     ("siftflow_layers", "SIFTFlowSegDataLayer"): 2}


def _name(layer: caffe_pb2.LayerParameter) -> str:
    return f"{layer.python_param.module}.{layer.python_param.layer}"


def _where(layer: caffe_pb2.LayerParameter, source_map: SourceMap | None) -> str:
    return f"{source_map.where(layer.name)}: " if source_map is not None else ""


def check_python_layers(net: caffe_pb2.NetParameter, source_map: SourceMap | None = None) -> None:
    """Refuse every Python layer that is not a known data layer, and known ones with tops no dataset has."""
    known = ", ".join(f"{module}.{name}" for module, name in KNOWN_DATA_LAYERS)
    for layer in net.layer:
        if layer.type != "Python":
            continue
        key = (layer.python_param.module, layer.python_param.layer)
        if key not in KNOWN_DATA_LAYERS or layer.bottom:
            raise UserError(f"{_where(layer, source_map)}layer '{layer.name}' is a Python layer "
                            f"({_name(layer)}), which digitslite does not run; only the FCN data layers "
                            f"({known}) are bound to a dataset: replace this one with built-in layers")
        if len(layer.top) > KNOWN_DATA_LAYERS[key]:
            extra = ", ".join(layer.top[KNOWN_DATA_LAYERS[key]:])
            raise UserError(f"{_where(layer, source_map)}layer '{layer.name}' ({_name(layer)}) also feeds "
                            f"{extra}; a digitslite dataset holds an image and one label map: remove the "
                            f"layers that read {extra}")


def _params(layer: caffe_pb2.LayerParameter) -> dict:
    """The layer's param_str, a Python dict literal as the FCN layers read it."""
    try:
        params = ast.literal_eval(layer.python_param.param_str) if layer.python_param.param_str else {}
    except (ValueError, SyntaxError):
        raise UserError(f"layer '{layer.name}' ({_name(layer)}): param_str is not a Python dict literal "
                        f"({layer.python_param.param_str!r}); write it as the FCN layers expect, e.g. "
                        "\"{'mean': (104.0, 117.0, 123.0)}\"") from None
    return params if isinstance(params, dict) else {}


def as_data_layer(layer: caffe_pb2.LayerParameter) -> caffe_pb2.LayerParameter:
    """The Data layer that feeds a known Python data layer's tops from the dataset."""
    check_python_layers(caffe_pb2.NetParameter(layer=[layer]))
    data = caffe_pb2.LayerParameter(name=layer.name, type="Data", top=layer.top)
    data.include.extend(layer.include)
    data.exclude.extend(layer.exclude)
    data.data_param.batch_size = 1
    data.data_param.backend = caffe_pb2.DataParameter.LMDB
    params = _params(layer)
    if not layer.include and not layer.exclude and "split" in params:
        data.include.add(phase=caffe_pb2.TRAIN if params["split"] == "train" else caffe_pb2.TEST)
    if params.get("mean"):
        data.transform_param.mean_value.extend(float(value) for value in params["mean"])
    return data
