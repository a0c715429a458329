"""Convolutionalize: BVLC AlexNet-shaped classifier weights (random) made into FCN-AlexNet initial
weights, from an imported classifier and on import of the embedded fcn-alexnet entry.

The classifier's weights (about 240 MB) are written once per module.
"""
import json
import os
import shutil

import numpy as np
import pytest
import torch

from digitslite.caffe.caffemodel import read_weights, write_caffemodel
from digitslite.caffe.prototxt import parse_net, read_net
from digitslite.engine.net import CaffeNet
from digitslite.store.convolutionalize import convolutionalize_model
from digitslite.store.entries import index_store
from digitslite.store.format import INFO_FILE, parse_info
from digitslite.store.importer import import_model
from digitslite.store.locations import embedded_store_dir

pytestmark = pytest.mark.slow

ALEXNET_SHAPES = {
    "conv1": [(96, 3, 11, 11), (96,)], "conv2": [(256, 48, 5, 5), (256,)],
    "conv3": [(384, 256, 3, 3), (384,)], "conv4": [(384, 192, 3, 3), (384,)],
    "conv5": [(256, 192, 3, 3), (256,)], "fc6": [(4096, 9216), (4096,)],
    "fc7": [(4096, 4096), (4096,)], "fc8": [(1000, 4096), (1000,)],
}
# fc6 of the classifier alone: its input is pool5 (256 x 6 x 6), as in AlexNet.
FC6_HEAD = """
name: "fc6_head"
layer { name: "pool5" type: "Input" top: "pool5" input_param { shape { dim: 1 dim: 256 dim: 6 dim: 6 } } }
layer { name: "fc6" type: "InnerProduct" bottom: "pool5" top: "fc6" inner_product_param { num_output: 4096 } }
layer { name: "relu6" type: "ReLU" bottom: "fc6" top: "fc6" }
"""


def _copy_entry(name: str, store, weights) -> None:
    """An embedded entry copied into `store` with these local weights in place of the published ones."""
    entry = store / name
    shutil.copytree(embedded_store_dir() / name, entry)
    os.link(weights, entry / "bvlc_alexnet.caffemodel")
    info = json.loads((entry / INFO_FILE).read_text())
    info["files"] = {}
    (entry / INFO_FILE).write_text(json.dumps(info))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with bvlc_alexnet and fcn-alexnet, both holding the same random classifier weights."""
    folder = tmp_path_factory.mktemp("alexnet_store")
    rng = np.random.default_rng(11)
    source = {name: [(rng.standard_normal(shape, dtype=np.float32) * 0.01) for shape in shapes]
              for name, shapes in ALEXNET_SHAPES.items()}
    weights = folder / "random-alexnet.caffemodel"
    write_caffemodel(weights, read_net(embedded_store_dir() / "bvlc_alexnet" / "deploy.prototxt"), source)
    store = folder / "store"
    store.mkdir()
    _copy_entry("bvlc_alexnet", store, weights)
    _copy_entry("fcn-alexnet", store, weights)
    index_store(store)
    return {"path": store, "source": source}


def test_convolutionalized_fc6_computes_the_classifiers_fc6(store, tmp_path):
    """fc6 as a 6x6 convolution over FCN-AlexNet's pool5 equals the classifier's InnerProduct fc6 on each
    6x6 window of it. (The nets as wholes differ: DIGITS' FCN-AlexNet pools before LRN, AlexNet after.)"""
    classifier = import_model(str(store["path"]), "bvlc_alexnet", tmp_path / "alexnet")
    made = convolutionalize_model(classifier.path, tmp_path / "fcn", num_classes=5)

    info = parse_info(json.loads((made.path / INFO_FILE).read_text()), "made")
    assert info.snapshot_file == "fcn_alexnet.caffemodel" and info.deploy_file == "deploy.prototxt"
    actions = {action.layer: action.action for action in made.actions}
    assert actions == {"conv1": "copied", "conv2": "copied", "conv3": "copied", "conv4": "copied",
                       "conv5": "copied", "fc6": "coerced", "fc7": "coerced", "score_fr": "left-initialised",
                       "upscore": "interpolated", "fc8": "dropped"}
    assert sorted(read_weights(made.weights)) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]

    fcn = CaffeNet(read_net(made.path / "deploy.prototxt"), input_shapes={"data": (1, 3, 227, 227)})
    fcn.load_weights(made.weights)
    head = CaffeNet(parse_net(FC6_HEAD))
    head.load_weights(classifier.weights)
    image = torch.from_numpy(np.random.default_rng(2).uniform(0, 255, (1, 3, 227, 227)).astype(np.float32))
    with torch.no_grad():
        blobs = fcn.forward({"data": image}, keep=["pool5", "fc6"])
        pool5, conv6 = blobs["pool5"], blobs["fc6"]
        assert conv6.shape[2:] == (pool5.shape[2] - 5, pool5.shape[3] - 5)
        for row, column in [(0, 0), (3, 5), (conv6.shape[2] - 1, conv6.shape[3] - 1)]:
            window = pool5[:, :, row:row + 6, column:column + 6].contiguous()
            fc6 = head.forward({"pool5": window})["fc6"]
            np.testing.assert_allclose(conv6[0, :, row, column].numpy(), fc6[0].numpy(), rtol=1e-4, atol=1e-5)


def test_importing_fcn_alexnet_convolutionalizes_the_classifier_weights(store, tmp_path):
    imported = import_model(str(store["path"]), "fcn-alexnet", tmp_path / "fcn-alexnet")

    assert imported.conversions == [
        "bvlc_alexnet.caffemodel: convolutionalized into fcn_alexnet.caffemodel by net surgery"]
    assert imported.info.snapshot_file == "fcn_alexnet.caffemodel"
    assert "convolutionalize" not in imported.info.data
    assert not (imported.path / "bvlc_alexnet.caffemodel").exists()
    weights = read_weights(imported.weights)
    fc6, fc6_bias = weights["fc6"]
    np.testing.assert_array_equal(fc6, store["source"]["fc6"][0].reshape(4096, 256, 6, 6))
    np.testing.assert_array_equal(fc6_bias, store["source"]["fc6"][1])
    assert "score_fr" not in weights and "upscore" not in weights
