"""The FCN reference repository's Python data layers become Data layers of a digitslite dataset; any
other Python layer is refused by module and class."""
from pathlib import Path

import pytest

from digitslite.caffe import caffe_pb2
from digitslite.caffe.deploy import bind_data_sources
from digitslite.caffe.prototxt import read_net
from digitslite.caffe.pythonlayers import as_data_layer, check_python_layers
from digitslite.errors import UserError


def _python_layer(module: str, name: str, param_str: str, tops=("data", "label")) -> caffe_pb2.LayerParameter:
    layer = caffe_pb2.LayerParameter(name="data", type="Python", top=list(tops))
    layer.python_param.module, layer.python_param.layer = module, name
    layer.python_param.param_str = param_str
    return layer


def test_the_fcn_val_layer_reads_val_db_with_its_mean(peer):
    net = read_net(peer("fcn__voc-fcn8s__val.prototxt"))
    bound = bind_data_sources(net, Path("/datasets/voc"))
    data = bound.layer[0]
    assert (data.name, data.type, list(data.top)) == ("data", "Data", ["data", "label"])
    assert data.data_param.source == "/datasets/voc/val_db/features"
    assert data.data_param.batch_size == 1
    # the BGR mean written in the file's param_str
    assert list(data.transform_param.mean_value) == pytest.approx([104.00699, 116.66877, 122.67892])
    assert [rule.phase for rule in data.include] == [caffe_pb2.TEST]   # split seg11valid


def test_the_fcn_train_layer_reads_train_db(peer):
    data = bind_data_sources(read_net(peer("fcn__voc-fcn8s__train.prototxt")), Path("/d")).layer[0]
    assert data.data_param.source == "/d/train_db/features"
    assert [rule.phase for rule in data.include] == [caffe_pb2.TRAIN]


def test_other_python_layers_are_refused_by_module_and_class():
    layer = _python_layer("my_layers", "Augment", "")
    with pytest.raises(UserError, match=r"'data' is a Python layer \(my_layers.Augment\), which "
                                        r"digitslite does not run; only the FCN data layers "
                                        r"\(voc_layers.VOCSegDataLayer"):
        check_python_layers(caffe_pb2.NetParameter(layer=[layer]))


def test_siftflows_geometric_labels_have_no_source():
    layer = _python_layer("siftflow_layers", "SIFTFlowSegDataLayer", "{'split': 'trainval'}",
                          tops=("data", "sem", "geo"))
    with pytest.raises(UserError, match=r"also feeds geo; a digitslite dataset holds an image and one "
                                        r"label map"):
        as_data_layer(layer)


def test_a_param_str_that_is_not_a_dict_literal_is_named():
    with pytest.raises(UserError, match=r"param_str is not a Python dict literal"):
        as_data_layer(_python_layer("voc_layers", "VOCSegDataLayer", "{'mean': (1, 2"))
