"""Caffe's read-time upgrades (caffe-spec §1.4), so that V0 and V1 nets, deprecated fields and the
old solver_type enum load exactly as Caffe would see them after its own upgrade.

Steps run in Caffe's order, each only when its detector fires, so a current net is left as it is.
Problems Caffe only logs (a V0 field that the layer type cannot hold) are logged here too; problems
Caffe treats as fatal raise PrototxtError at the layer's place.
"""
import logging
import os

from google.protobuf.message import Message

from digitslite.caffe import caffe_pb2
from digitslite.caffe.sourcemap import SourceMap, source_map_or_default

log = logging.getLogger(__name__)

V1 = caffe_pb2.V1LayerParameter

V1_TYPE_NAMES: dict[str, str] = {
    "NONE": "", "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout", "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output", "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData", "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN", "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence", "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH",
    "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}
"""V1 LayerType enum name -> the V2 `type` string (UpgradeV1LayerType)."""

V0_TYPE_NAMES: dict[str, str] = {
    "accuracy": "ACCURACY", "bnll": "BNLL", "concat": "CONCAT", "conv": "CONVOLUTION", "data": "DATA",
    "dropout": "DROPOUT", "euclidean_loss": "EUCLIDEAN_LOSS", "flatten": "FLATTEN",
    "hdf5_data": "HDF5_DATA", "hdf5_output": "HDF5_OUTPUT", "im2col": "IM2COL", "images": "IMAGE_DATA",
    "infogain_loss": "INFOGAIN_LOSS", "innerproduct": "INNER_PRODUCT", "lrn": "LRN",
    "multinomial_logistic_loss": "MULTINOMIAL_LOGISTIC_LOSS", "pool": "POOLING", "relu": "RELU",
    "sigmoid": "SIGMOID", "softmax": "SOFTMAX", "softmax_loss": "SOFTMAX_LOSS", "split": "SPLIT",
    "tanh": "TANH", "window_data": "WINDOW_DATA",
}
"""V0 lower-case type string -> V1 LayerType enum name (UpgradeV0LayerType)."""

SOLVER_TYPE_NAMES: dict[int, str] = {
    caffe_pb2.SolverParameter.SGD: "SGD", caffe_pb2.SolverParameter.NESTEROV: "Nesterov",
    caffe_pb2.SolverParameter.ADAGRAD: "AdaGrad", caffe_pb2.SolverParameter.RMSPROP: "RMSProp",
    caffe_pb2.SolverParameter.ADADELTA: "AdaDelta", caffe_pb2.SolverParameter.ADAM: "Adam",
}
"""Deprecated solver_type enum -> the `type` string."""

_ANY_TYPE = "*"
_CONV_OR_IP = {"conv": "convolution_param", "innerproduct": "inner_product_param"}
_CONV_OR_POOL = {"conv": "convolution_param", "pool": "pooling_param"}
_SOURCES = {"data": "data_param", "hdf5_data": "hdf5_data_param", "images": "image_data_param",
            "window_data": "window_data_param"}


def _same_field(holders: dict[str, str], field_name: str) -> dict[str, tuple[str, str]]:
    return {v0_type: (holder, field_name) for v0_type, holder in holders.items()}


# V0 field -> {V0 type (or any): (V1 message field, field inside it)}; a field name of "" means the
# V0 value is the whole message. Repeated targets (conv pad/kernel/stride) get the value appended.
_V0_FIELD_TARGETS: dict[str, dict[str, tuple[str, str]]] = {
    "num_output": _same_field(_CONV_OR_IP, "num_output"),
    "biasterm": _same_field(_CONV_OR_IP, "bias_term"),
    "weight_filler": _same_field(_CONV_OR_IP, "weight_filler"),
    "bias_filler": _same_field(_CONV_OR_IP, "bias_filler"),
    "pad": _same_field(_CONV_OR_POOL, "pad"),
    "kernelsize": _same_field(_CONV_OR_POOL, "kernel_size"),
    "stride": _same_field(_CONV_OR_POOL, "stride"),
    "group": {"conv": ("convolution_param", "group")},
    "pool": {"pool": ("pooling_param", "pool")},
    "dropout_ratio": {"dropout": ("dropout_param", "dropout_ratio")},
    "local_size": {"lrn": ("lrn_param", "local_size")},
    "alpha": {"lrn": ("lrn_param", "alpha")},
    "beta": {"lrn": ("lrn_param", "beta")},
    "k": {"lrn": ("lrn_param", "k")},
    "source": {**_same_field(_SOURCES, "source"), "infogain_loss": ("infogain_loss_param", "source")},
    "batchsize": _same_field(_SOURCES, "batch_size"),
    "rand_skip": {"data": ("data_param", "rand_skip"), "images": ("image_data_param", "rand_skip")},
    "shuffle_images": {"images": ("image_data_param", "shuffle")},
    "new_height": {"images": ("image_data_param", "new_height")},
    "new_width": {"images": ("image_data_param", "new_width")},
    "concat_dim": {"concat": ("concat_param", "concat_dim")},
    "det_fg_threshold": {"window_data": ("window_data_param", "fg_threshold")},
    "det_bg_threshold": {"window_data": ("window_data_param", "bg_threshold")},
    "det_fg_fraction": {"window_data": ("window_data_param", "fg_fraction")},
    "det_context_pad": {"window_data": ("window_data_param", "context_pad")},
    "det_crop_mode": {"window_data": ("window_data_param", "crop_mode")},
    "hdf5_output_param": {"hdf5_output": ("hdf5_output_param", "")},
    "scale": {_ANY_TYPE: ("transform_param", "scale")},
    "meanfile": {_ANY_TYPE: ("transform_param", "mean_file")},
    "cropsize": {_ANY_TYPE: ("transform_param", "crop_size")},
    "mirror": {_ANY_TYPE: ("transform_param", "mirror")},
}
_V0_COPIED_AS_IS = ("name", "type", "blobs", "blobs_lr", "weight_decay")

_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")
_V1_DATA_PARAMS = {V1.DATA: "data_param", V1.IMAGE_DATA: "image_data_param",
                   V1.WINDOW_DATA: "window_data_param"}


def upgrade_net(net: caffe_pb2.NetParameter, source_map: SourceMap | None = None) -> caffe_pb2.NetParameter:
    """Apply Caffe's upgrade chain to `net` in place and return it (no copy: caffemodels are large).

    Order: V0 -> V1 (padding layers folded), data-transform fields, V1 -> V2, input fields -> an
    Input layer in front, BatchNorm with 3 params -> lr_mult = decay_mult = 0. A current net comes
    back unchanged.
    """
    where = source_map_or_default(source_map, net.name)
    if any(layer.HasField("layer") for layer in net.layers):
        _upgrade_v0(net, where)
    if any(_data_layer_needs_transform_upgrade(layer) for layer in net.layers):
        _upgrade_data_transform(net)
    if len(net.layers) > 0:
        _upgrade_v1(net, where)
    if len(net.input) > 0:
        _upgrade_input(net, where)
    _upgrade_batch_norm(net)
    return net


def _upgrade_v0(net: caffe_pb2.NetParameter, where: SourceMap) -> None:
    """V0 `layers { layer { ... } }` -> V1 `layers { ... }`; only name, input, input_dim and
    force_backward survive at the net level, as in Caffe."""
    connections = _fold_padding_layers(net, where)
    upgraded = caffe_pb2.NetParameter()
    if net.HasField("name"):
        upgraded.name = net.name
    for connection in connections:
        _v0_layer_to_v1(connection, upgraded.layers.add(), where)
    upgraded.input.extend(net.input)
    upgraded.input_dim.extend(net.input_dim)
    if net.HasField("force_backward"):
        upgraded.force_backward = net.force_backward
    net.CopyFrom(upgraded)


def _v0_name(connection: caffe_pb2.V1LayerParameter) -> str:
    return connection.layer.name or connection.name


def _fold_padding_layers(net: caffe_pb2.NetParameter, where: SourceMap) -> list[caffe_pb2.V1LayerParameter]:
    """The V0 layers without their 'padding' layers, whose pad moves into the conv/pool they feed."""
    last_producer = dict.fromkeys(net.input, -1)
    kept: list[caffe_pb2.V1LayerParameter] = []
    for index, connection in enumerate(net.layers):
        if connection.layer.type != "padding":
            kept.append(V1())
            kept[-1].CopyFrom(connection)
        for position, blob in enumerate(connection.bottom):
            if blob not in last_producer:
                raise where.error(_v0_name(connection), f"Unknown blob input '{blob}' to V0 layer "
                                  f"'{_v0_name(connection)}'", "produce it with an earlier layer or list it "
                                  "as a net input", key="bottom", value=blob, token=blob)
            source_index = last_producer[blob]
            if source_index < 0 or net.layers[source_index].layer.type != "padding":
                continue
            padding = net.layers[source_index]
            _check_padding_use(connection, padding, where)
            kept[-1].layer.pad = padding.layer.pad
            kept[-1].bottom[position] = padding.bottom[0]
        for blob in connection.top:
            last_producer[blob] = index
    return kept


def _check_padding_use(consumer: caffe_pb2.V1LayerParameter, padding: caffe_pb2.V1LayerParameter,
                       where: SourceMap) -> None:
    name = _v0_name(consumer)
    if consumer.layer.type not in ("conv", "pool"):
        raise where.error(name, f"the padding layer '{_v0_name(padding)}' feeds a "
                          f"'{consumer.layer.type}' layer", "a V0 padding layer can only feed a conv or pool "
                          "layer; give that layer a pad instead")
    if len(consumer.bottom) != 1:
        raise where.error(name, f"layer '{name}' takes a padding layer's output among several bottoms",
                          "a conv or pool layer fed by a padding layer must have exactly one bottom")
    if len(padding.bottom) != 1 or len(padding.top) != 1:
        raise where.error(_v0_name(padding), f"the padding layer '{_v0_name(padding)}' must have one bottom "
                          "and one top", "give the padding layer exactly one bottom and one top")


def _v0_layer_to_v1(connection: caffe_pb2.V1LayerParameter, v1: caffe_pb2.V1LayerParameter,
                    where: SourceMap) -> None:
    v1.bottom.extend(connection.bottom)
    v1.top.extend(connection.top)
    if not connection.HasField("layer"):
        return
    v0 = connection.layer
    if v0.HasField("name"):
        v1.name = v0.name
    if v0.HasField("type"):
        if v0.type not in V0_TYPE_NAMES:
            raise where.error(v0.name, f"unknown V0 layer type '{v0.type}'",
                              f"use one of {', '.join(V0_TYPE_NAMES)}", key="type", value=v0.type,
                              token=v0.type)
        v1.type = V1.LayerType.Value(V0_TYPE_NAMES[v0.type])
    v1.blobs.extend(v0.blobs)
    v1.blobs_lr.extend(v0.blobs_lr)
    v1.weight_decay.extend(v0.weight_decay)
    for descriptor, value in v0.ListFields():
        if descriptor.name in _V0_COPIED_AS_IS:
            continue
        targets = _V0_FIELD_TARGETS.get(descriptor.name, {})
        target = targets.get(v0.type, targets.get(_ANY_TYPE))
        if target is None:
            log.warning("%s: V0 field %s does not apply to layer '%s' of type '%s' and is dropped (the "
                        "upgrade is not fully compatible)", where.path, descriptor.name, v0.name, v0.type)
            continue
        _assign(getattr(v1, target[0]), target[1], value)


def _assign(holder: Message, field_name: str, value: object) -> None:
    """holder.field_name = value, appending for repeated fields; "" copies the whole message."""
    if not field_name:
        holder.CopyFrom(value)
        return
    descriptor = holder.DESCRIPTOR.fields_by_name[field_name]
    if descriptor.is_repeated:
        getattr(holder, field_name).append(value)
    elif descriptor.message_type is not None:
        getattr(holder, field_name).CopyFrom(value)
    else:
        setattr(holder, field_name, value)


def _data_layer_needs_transform_upgrade(layer: caffe_pb2.V1LayerParameter) -> bool:
    param_name = _V1_DATA_PARAMS.get(layer.type)
    if param_name is None:
        return False
    param = getattr(layer, param_name)
    return any(param.HasField(name) for name in _TRANSFORM_FIELDS)


def _upgrade_data_transform(net: caffe_pb2.NetParameter) -> None:
    """Move scale/mean_file/crop_size/mirror of V1 data layers into transform_param.

    Like Caffe, every V1 data layer then holds a (possibly empty) data and transform message.
    """
    for layer in net.layers:
        param_name = _V1_DATA_PARAMS.get(layer.type)
        if param_name is None:
            continue
        param = getattr(layer, param_name)
        param.SetInParent()
        layer.transform_param.SetInParent()
        for name in _TRANSFORM_FIELDS:
            if param.HasField(name):
                setattr(layer.transform_param, name, getattr(param, name))
                param.ClearField(name)


def _upgrade_v1(net: caffe_pb2.NetParameter, where: SourceMap) -> None:
    """V1 `layers { type: ENUM }` -> V2 `layer { type: "String" }`."""
    if len(net.layer) > 0:
        raise where.error(net.layers[0].name, "the net mixes `layer { }` blocks with old-style `layers { }` "
                          "blocks", 'write every block in one format, e.g. layer { type: "Convolution" ... }')
    for v1 in net.layers:
        _v1_layer_to_v2(v1, net.layer.add(), where)
    net.ClearField("layers")


def _v1_layer_to_v2(v1: caffe_pb2.V1LayerParameter, layer: caffe_pb2.LayerParameter,
                    where: SourceMap) -> None:
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    if v1.HasField("name"):
        layer.name = v1.name
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    if v1.HasField("type"):
        enum_name = V1.LayerType.Name(v1.type)
        if enum_name not in V1_TYPE_NAMES:
            raise where.error(v1.name, f"V1 layer type {enum_name} has no current equivalent",
                              "write the layer in the current `layer { type: \"...\" }` format")
        layer.type = V1_TYPE_NAMES[enum_name]
    layer.blobs.extend(v1.blobs)
    for attribute, values in (("name", v1.param), ("share_mode", v1.blob_share_mode),
                              ("lr_mult", v1.blobs_lr), ("decay_mult", v1.weight_decay)):
        for index, value in enumerate(values):
            while len(layer.param) <= index:
                layer.param.add()
            setattr(layer.param[index], attribute, value)
    layer.loss_weight.extend(v1.loss_weight)
    for descriptor, value in v1.ListFields():
        if descriptor.name.endswith("_param"):
            getattr(layer, descriptor.name).CopyFrom(value)
    if v1.HasField("layer"):
        log.warning("%s: layer '%s' also holds a V0 `layer` block, which is ignored", where.path, v1.name)


def _upgrade_input(net: caffe_pb2.NetParameter, where: SourceMap) -> None:
    """Deprecated net-level input/input_shape/input_dim -> an "Input" layer at the front."""
    inputs = list(net.input)
    if len(net.input_shape) > 0:
        if len(net.input_shape) != len(inputs):
            raise where.top_error("input_shape", f"{len(inputs)} input(s) but {len(net.input_shape)} "
                                  "input_shape block(s)", "give one input_shape { dim: ... } per input")
        shapes = [list(shape.dim) for shape in net.input_shape]
    elif len(net.input_dim) > 0:
        if len(net.input_dim) != 4 * len(inputs):
            raise where.top_error("input_dim", f"{len(inputs)} input(s) need {4 * len(inputs)} input_dim "
                                  f"values (N, C, H, W each), found {len(net.input_dim)}",
                                  "give four input_dim values per input")
        shapes = [list(net.input_dim[4 * i:4 * i + 4]) for i in range(len(inputs))]
    else:
        shapes = None
    if shapes is not None:
        input_layer = caffe_pb2.LayerParameter(name="input", type="Input", top=inputs)
        for dims in shapes:
            input_layer.input_param.shape.add(dim=dims)
        net.layer.insert(0, input_layer)
    for name in ("input", "input_shape", "input_dim"):
        net.ClearField(name)


def _upgrade_batch_norm(net: caffe_pb2.NetParameter) -> None:
    """Old BatchNorm definitions list 3 ParamSpecs; their statistics must not be learned."""
    for layer in net.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            for spec in layer.param:
                spec.lr_mult = 0.0
                spec.decay_mult = 0.0


def upgrade_solver(solver: caffe_pb2.SolverParameter,
                   source_map: SourceMap | None = None) -> caffe_pb2.SolverParameter:
    """The deprecated solver_type enum -> the `type` string, in place; both given is an error."""
    if not solver.HasField("solver_type"):
        return solver
    if solver.HasField("type"):
        where = source_map if source_map is not None else SourceMap(path="<solver>")
        raise where.top_error("solver_type", "the solver sets both the old `solver_type` and the new `type`",
                              f'keep only `type: "{SOLVER_TYPE_NAMES[solver.solver_type]}"` '
                              "(solver_type is the deprecated form)",
                              token=caffe_pb2.SolverParameter.SolverType.Name(solver.solver_type))
    solver.type = SOLVER_TYPE_NAMES[solver.solver_type]
    solver.ClearField("solver_type")
    return solver


def apply_snapshot_prefix_default(solver: caffe_pb2.SolverParameter,
                                  solver_path: str | os.PathLike) -> caffe_pb2.SolverParameter:
    """Caffe's snapshot_prefix defaults, in place: absent -> the solver path without its extension;
    an existing directory (relative to the working directory, as in Caffe) -> that directory joined
    with the solver file's stem."""
    path = os.fspath(solver_path)
    if not solver.HasField("snapshot_prefix"):
        solver.snapshot_prefix = os.path.splitext(path)[0]
    elif os.path.isdir(solver.snapshot_prefix):
        stem = os.path.splitext(os.path.basename(path))[0]
        solver.snapshot_prefix = os.path.join(solver.snapshot_prefix, stem)
    return solver
