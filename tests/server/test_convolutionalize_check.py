"""Convolutionalize checks the classifier's layer shapes against the FCN before it queues a job: LeNet
cannot become FCN-AlexNet, and the refusal names the layer and both shapes (issue 13, item 14)."""
import numpy as np

from digitslite.caffe.caffemodel import write_caffemodel
from digitslite.caffe.paramshapes import param_shapes
from digitslite.caffe.prototxt import parse_net
from digitslite.modelstore.entries import write_info
from tests.server.harness import created_id, running_server

LENET = """name: "LeNet"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 28 dim: 28 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 20 kernel_size: 5 } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1" inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }
"""


def _lenet_entry(entry) -> None:
    entry.mkdir(parents=True)
    (entry / "deploy.prototxt").write_text(LENET)
    net = parse_net(LENET)
    rng = np.random.default_rng(5)
    weights = {name: [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
               for name, shapes in param_shapes(net).items() if shapes}
    write_caffemodel(entry / "lenet.caffemodel", net, weights)
    write_info(entry, {"name": "LeNet", "framework": "caffe", "task": "classification",
                       "model file": "deploy.prototxt", "deploy file": "deploy.prototxt",
                       "snapshot file": "lenet.caffemodel"})


def test_a_classifier_that_cannot_become_the_fcn_is_refused_with_the_shapes(tmp_path):
    data = tmp_path / "data"
    _lenet_entry(data / "store" / "lenet")
    with running_server(tmp_path / "jobs", [data]) as server:
        client = server.client()
        classifier = created_id(client.post("/api/v1/store/import", {"store": "store", "name": "lenet"}))
        assert client.wait_status(classifier)["status"] == "done"
        jobs = client.get("/api/v1/jobs").json()["total"]
        refused = client.post(f"/api/v1/pretrained/{classifier}/convolutionalize",
                              {"network": "fcn_alexnet", "num_classes": 5})
        assert refused.status == 422, refused.body
        error = refused.json()["error"]
        assert error["field"] == "network"
        assert "layer 'conv1'" in error["message"]
        assert "(20, 1, 5, 5)" in error["message"] and "(96, 3, 11, 11)" in error["message"]
        assert client.get("/api/v1/jobs").json()["total"] == jobs  # nothing was queued
