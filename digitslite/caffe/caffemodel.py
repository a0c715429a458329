"""Caffe weights (.caffemodel) <-> numpy: read, write and match them to a network by layer name.

A .caffemodel is one binary NetParameter whose layers carry their parameter blobs (caffe-spec §5).
Large models (AlexNet is 233 MB) must load in seconds, so blob data travel as packed bytes and
numpy buffers, never element by element through Python.
"""
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError

from digitslite.caffe import caffe_pb2
from digitslite.caffe.prototxt import upgrade_net, write_net
from digitslite.caffe.shapes import Shape
from digitslite.errors import UserError

Weights = dict[str, list[np.ndarray]]

_LEGACY_AXES = ("num", "channels", "height", "width")
# A .binaryproto holds one array (a mean image, an infogain matrix): a 3 x 4096 x 4096 float mean is
# 192 MiB, so anything past this is not one.
MAX_BLOB_FILE_BYTES = 256 << 20
_RENAME_FIX = "rename the layer in the network definition to train it from scratch instead"


class WeightsError(UserError):
    """Weights that cannot be read, or do not fit the network they are loaded into."""


def blob_shape(blob: caffe_pb2.BlobProto) -> Shape:
    """The blob's shape: legacy 4-D when any of num/channels/height/width is set, else `shape.dim`.

    A blob with neither is a 0-axis scalar, which is how Caffe writes one.
    """
    if is_legacy_blob(blob):
        return tuple(getattr(blob, axis) for axis in _LEGACY_AXES)
    return tuple(blob.shape.dim)


def is_legacy_blob(blob: caffe_pb2.BlobProto) -> bool:
    """Whether the blob describes its shape with the deprecated num/channels/height/width fields."""
    return any(blob.HasField(axis) for axis in _LEGACY_AXES)


def blob_to_array(blob: caffe_pb2.BlobProto) -> np.ndarray:
    """The blob's values as an array of its shape: float64 from `double_data` when that is non-empty,
    else float32 from `data`."""
    shape = blob_shape(blob)
    if len(blob.double_data):
        values = np.array(blob.double_data, dtype=np.float64)
    else:
        values = np.array(blob.data, dtype=np.float32)
    expected = int(np.prod(shape, dtype=np.int64))
    if values.size != expected:
        raise WeightsError(
            f"blob of shape {shape} holds {values.size} values instead of {expected}; "
            "the file is damaged or was not written by Caffe"
        )
    return values.reshape(shape)


def _read_bounded(path: Path, what: str, fix: str) -> bytes:
    """The bytes of a regular file of at most MAX_BLOB_FILE_BYTES; a device, pipe or huge file is
    refused before anything is read (opened without blocking, so a pipe cannot hang the reader)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise UserError(f"{path}: cannot read {what} ({exc.strerror}); {fix}") from exc
    limit_mib = MAX_BLOB_FILE_BYTES >> 20
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{path}: not a regular file, so not {what}; {fix}")
        if info.st_size > MAX_BLOB_FILE_BYTES:
            raise UserError(f"{path}: {info.st_size} bytes, more than {what} may hold ({limit_mib} MiB); "
                            f"{fix}")
        data = stream.read(MAX_BLOB_FILE_BYTES + 1)
    if len(data) > MAX_BLOB_FILE_BYTES:
        raise UserError(f"{path}: grew past {limit_mib} MiB while read; {fix}")
    return data


def read_blob_file(path: str | os.PathLike, what: str, fix: str) -> np.ndarray:
    """The array in a BlobProto file (.binaryproto: a mean image, an infogain matrix); errors name
    the file, `what` it is for, and the `fix`."""
    data = _read_bounded(Path(path), what, fix)
    try:
        return blob_to_array(caffe_pb2.BlobProto.FromString(data))
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from exc
    except Exception as exc:  # protobuf raises DecodeError, whose base class differs by backend
        raise UserError(f"{path}: not a BlobProto ({exc}); {fix}") from exc


def array_to_blob(array: np.ndarray, legacy_4d: bool = False) -> caffe_pb2.BlobProto:
    """A BlobProto holding `array`: float64 goes to `double_data`, anything else to float32 `data`.

    The shape is written as BlobShape, or with `legacy_4d` as num/channels/height/width (left-padded
    with 1s, as Caffe's legacy readers expect).
    """
    blob = caffe_pb2.BlobProto()
    _fill_blob(blob, np.asarray(array), legacy_4d)
    return blob


def _fill_blob(blob: caffe_pb2.BlobProto, array: np.ndarray, legacy_4d: bool) -> None:
    """Write `array` into an empty `blob`; the values go in as one packed field, parsed by protobuf
    in bulk (extending a repeated field from Python is about 40 times slower)."""
    if legacy_4d:
        if array.ndim > 4:
            raise ValueError(f"a legacy 4-D blob cannot hold a {array.ndim}-axis array")
        for axis, size in zip(_LEGACY_AXES, (1,) * (4 - array.ndim) + array.shape, strict=True):
            setattr(blob, axis, size)
    else:
        blob.shape.dim.extend(array.shape)
    values_field, dtype = ("double_data", "<f8") if array.dtype == np.float64 else ("data", "<f4")
    raw = np.ascontiguousarray(array, dtype=dtype).tobytes()
    number = caffe_pb2.BlobProto.DESCRIPTOR.fields_by_name[values_field].number
    blob.MergeFromString(_varint(number << 3 | 2) + _varint(len(raw)) + raw)


def _varint(value: int) -> bytes:
    """Protobuf's base-128 varint encoding of a non-negative integer."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_caffemodel(path: str | os.PathLike) -> caffe_pb2.NetParameter:
    """Read a binary .caffemodel and upgrade it like Caffe does, so V0/V1 (`layers`) models work.

    There is no 64 MB limit: the whole file is parsed at once.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read the weights file ({exc.strerror}); check the path") from None
    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(data)
    except DecodeError:
        raise WeightsError(
            f"{path}: not a binary .caffemodel (the protobuf data is truncated or damaged at some point "
            f"of its {len(data)} bytes); give the weights file written by Caffe or digitslite, and the "
            ".prototxt only as the network definition"
        ) from None
    if not net.layer and not net.layers:
        raise WeightsError(
            f"{path}: holds no layers, so it is not a .caffemodel; give the weights file written by "
            "Caffe or digitslite"
        )
    return upgrade_net(net)


def read_weights(path: str | os.PathLike) -> Weights:
    """Layer name -> its parameter blobs in Caffe's order; layers without blobs are left out."""
    return net_weights(read_caffemodel(path), source_name=str(path))


def net_weights(net: caffe_pb2.NetParameter, source_name: str = "the weights") -> Weights:
    """The blobs held in an (upgraded) NetParameter as arrays, by layer name; a later layer of the
    same name replaces an earlier one, as in Caffe's loading."""
    return {layer.name: arrays for layer, arrays in _layer_arrays(net, source_name)}


def _layer_arrays(
    net: caffe_pb2.NetParameter, source_name: str
) -> Iterable[tuple[caffe_pb2.LayerParameter, list[np.ndarray]]]:
    """Each layer that holds blobs, with its blobs as arrays; errors name the file and the layer."""
    for layer in net.layer:
        arrays = []
        for index, blob in enumerate(layer.blobs):
            try:
                arrays.append(blob_to_array(blob))
            except WeightsError as exc:
                raise WeightsError(f"{source_name}: layer '{layer.name}' blob {index}: {exc}") from None
        if arrays:
            yield layer, arrays


def write_caffemodel(
    path: str | os.PathLike,
    net: caffe_pb2.NetParameter,
    weights: Mapping[str, Sequence[np.ndarray]],
) -> None:
    """Write `net` with each layer's blobs taken from `weights` (layers not named there get none),
    the way Caffe snapshots a net. The file appears complete or not at all (temp file + rename)."""
    model = caffe_pb2.NetParameter()
    model.CopyFrom(net)
    unknown = set(weights) - {layer.name for layer in model.layer}
    if unknown:
        raise WeightsError(
            f"{path}: weights given for layers the network does not have: {', '.join(sorted(unknown))}; "
            "drop them or add the layers to the network"
        )
    for layer in model.layer:
        del layer.blobs[:]
        for array in weights.get(layer.name, ()):
            _fill_blob(layer.blobs.add(), np.asarray(array), legacy_4d=False)
    write_net(model, path, binary=True)


def _shape_fits(source: Shape, target: Shape, legacy: bool) -> bool:
    """Caffe's Blob::ShapeEquals: a legacy blob (num/channels/height/width) matches a target of at
    most 4 axes left-padded with 1s; any other blob must have exactly the target's shape."""
    padded = (1,) * (4 - len(target)) + target
    return source == target or (legacy and len(target) <= 4 and padded == source)


@dataclass(frozen=True)
class MatchReport:
    """What loading weights into a network did, layer by layer.

    `weights` holds the copied arrays reshaped to the target's shapes, by target layer name;
    `ignored` names source layers the target does not have; `missing` names target layers with
    parameters that the source does not provide (they keep their initialisation).
    """

    weights: Weights = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def match_weights(
    source: Mapping[str, Sequence[np.ndarray]] | caffe_pb2.NetParameter,
    target_shapes: Mapping[str, Sequence[Shape]],
    source_name: str = "the weights",
) -> MatchReport:
    """Match weights to a network the way Caffe's CopyTrainedLayersFrom does.

    Layers pair by name only; blob counts must be equal and every blob must fit its target's shape
    (legacy blobs by the left-padding rule). From a NetParameter the legacy rule is exact; from
    arrays, any 4-D array is allowed to be a legacy blob. `target_shapes` lists every target layer,
    with [] for layers without parameters, so a name clash with a parameter-free layer is caught.
    A source layer without blobs provides nothing (Caffe would refuse it; digitslite writes such
    layers for parameters it leaves to the target's fillers).
    """
    report = MatchReport()
    for name, arrays, legacy in _source_layers(source, source_name):
        if name not in target_shapes:
            report.ignored.append(name)
            continue
        shapes = [tuple(shape) for shape in target_shapes[name]]
        if len(arrays) != len(shapes):
            raise WeightsError(
                f"{source_name}: layer '{name}' has {len(arrays)} blobs but the network's layer "
                f"'{name}' has {len(shapes)} parameters; {_RENAME_FIX}"
            )
        for index, (array, shape, is_legacy) in enumerate(zip(arrays, shapes, legacy, strict=True)):
            if not _shape_fits(array.shape, shape, legacy=is_legacy):
                raise WeightsError(
                    f"{source_name}: cannot copy blob {index} of layer '{name}': its shape is "
                    f"{array.shape} but the network's layer '{name}' needs {shape}; {_RENAME_FIX}"
                )
        report.weights[name] = [array.reshape(shape) for array, shape in zip(arrays, shapes, strict=True)]
    report.missing.extend(
        name for name, shapes in target_shapes.items() if shapes and name not in report.weights
    )
    return report


def _source_layers(
    source: Mapping[str, Sequence[np.ndarray]] | caffe_pb2.NetParameter, source_name: str
) -> Iterable[tuple[str, list[np.ndarray], list[bool]]]:
    """(layer name, arrays, whether each blob may be compared by the legacy rule) in source order,
    for the layers that hold blobs."""
    if isinstance(source, caffe_pb2.NetParameter):
        for layer, arrays in _layer_arrays(source, source_name):
            yield layer.name, arrays, [is_legacy_blob(blob) for blob in layer.blobs]
    else:
        for name, given in source.items():
            arrays = [np.asarray(array) for array in given]
            if arrays:
                yield name, arrays, [array.ndim == 4 for array in arrays]
