"""Turn an all-in-one network (train/val/deploy told apart by phase and stage) into its parts.

DIGITS' convention, kept here: Data layers carry no `source` (the dataset fills it), the "deploy"
stage drops data and loss layers, and the deploy net gets one Input layer in place of the data.
"""
from collections.abc import Sequence
from pathlib import Path

from digitslite.caffe import caffe_pb2
from digitslite.caffe.digitsnet import data_layer_phase
from digitslite.caffe.layers import LAYER_TYPES, Source
from digitslite.caffe.prototxt import filter_net
from digitslite.caffe.pythonlayers import as_data_layer
from digitslite.errors import UserError
from digitslite.layout import DatasetFiles

LABEL_DATABASES = {"label": "labels", "chroma": "chroma"}
"""A Data layer top that reads a label database, and that database: class (or ab bin) maps, or a
colorization dataset's two chroma planes. Any other top reads `features`."""

DATA_TYPES = frozenset(name for name, record in LAYER_TYPES.items() if record.source is Source.DATASET)
"""The layer types that read a dataset, which the deploy net replaces by one Input layer."""


def dataset_deploy_net(net: caffe_pb2.NetParameter, info: dict) -> caffe_pb2.NetParameter:
    """The deploy net for a dataset's images (`info` is its dataset.json): one image of the largest
    training size, since an FCN reshapes to any size."""
    width, height = info["image_size"]["train"]["max"]
    return deploy_net(net, [1, info.get("channels", 3), height, width])


def deploy_net(net: caffe_pb2.NetParameter, input_shape: Sequence[int],
               input_name: str = "data") -> caffe_pb2.NetParameter:
    """The deploy net: TEST phase with stage "deploy", its data layers replaced by one Input layer.

    `input_shape` is N,C,H,W of the image input (the dataset's size). Label inputs disappear with
    the loss and accuracy layers, which the deploy stage excludes; layers the deploy stage includes
    (a Softmax giving the distribution) stay, without their rules.
    """
    filtered = filter_net(net, phase="test", stages=["deploy"])
    deploy = caffe_pb2.NetParameter(name=filtered.name)
    data_tops = [top for layer in filtered.layer if layer.type in DATA_TYPES for top in layer.top]
    if input_name not in data_tops and not any(layer.type == "Input" for layer in filtered.layer):
        raise UserError(f"net {net.name!r} has no data layer with a top named {input_name!r}; "
                        "name the image input 'data' so the deploy net knows where images go")
    if input_name in data_tops:
        deploy.layer.add(name="input", type="Input", top=[input_name]).input_param.shape.add(
            dim=list(input_shape))
    for layer in filtered.layer:
        if layer.type not in DATA_TYPES:
            kept = deploy.layer.add()
            kept.CopyFrom(layer)
            for rules in ("include", "exclude"):   # applied above; a plain deploy file has none
                kept.ClearField(rules)
    used = {bottom for layer in deploy.layer for bottom in layer.bottom}
    dangling = sorted(set(data_tops) & used - {input_name})
    if dangling:
        raise UserError(f"the deploy stage of net {net.name!r} still uses {', '.join(dangling)}; "
                        'exclude the layers that read labels with exclude { stage: "deploy" }')
    return deploy


def bind_data_sources(net: caffe_pb2.NetParameter, dataset_dir: Path,
                      batch_size: int | None = None) -> caffe_pb2.NetParameter:
    """A copy of `net` whose Data layers (and FCN Python data layers, made Data layers) read the
    dataset's LMDBs (DIGITS layout).

    TRAIN-phase (or stage "train") layers read `train_db/<features|labels>`, TEST-phase (stage
    "val") ones `val_db/...`; a top named "label" reads the labels database, "chroma" the chroma
    one, any other top the features. An InfogainLoss whose matrix `source` is a relative path
    reads that file of the dataset (a colorization dataset's H).
    """
    bound = caffe_pb2.NetParameter()
    bound.CopyFrom(net)
    for layer in bound.layer:
        if layer.type == "Python" and not layer.bottom:
            layer.CopyFrom(as_data_layer(layer))
        source = layer.infogain_loss_param.source
        if layer.type == "InfogainLoss" and source and not Path(source).is_absolute():
            layer.infogain_loss_param.source = str(Path(dataset_dir) / source)
        if layer.type != "Data":
            continue
        phase = data_layer_phase(layer)
        if phase is None:
            raise UserError(f"Data layer {layer.name!r} must include exactly one phase (TRAIN or TEST, or "
                            "DIGITS' stage train or val) so digitslite knows which split it reads")
        stage = "train" if phase == caffe_pb2.TRAIN else "val"
        part = LABEL_DATABASES.get(layer.top[0], "features") if layer.top else "features"
        layer.data_param.source = str(DatasetFiles(dataset_dir).db(stage, part))
        layer.data_param.backend = caffe_pb2.DataParameter.LMDB
    if batch_size is not None:
        set_batch_size(bound, batch_size)
    return bound


def set_batch_size(net: caffe_pb2.NetParameter, batch_size: int) -> None:
    """Write `batch_size` into every Data layer of `net`, in place: what a batch size given for a
    network that reads LMDBs means (DIGITS' batch size field)."""
    for layer in net.layer:
        if layer.type == "Data":
            layer.data_param.batch_size = batch_size
