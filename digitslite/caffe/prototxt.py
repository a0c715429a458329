"""Caffe network and solver files in and out: text prototxt or binary NetParameter, upgraded on read
as Caffe does, written atomically. Every bad file becomes one located PrototxtError.

This is the module the rest of digitslite imports; the pieces live in small siblings (sourcemap,
textparse, upgrade, netfilter, topology) and are re-exported here.
"""
import os
from pathlib import Path

from google.protobuf import text_format
from google.protobuf.message import DecodeError

from digitslite.caffe import caffe_pb2
from digitslite.caffe.netfilter import compose_state, filter_net, state_meets_rule
from digitslite.caffe.sourcemap import PrototxtError, SourceMap
from digitslite.caffe.textparse import parse_text
from digitslite.caffe.topology import check_topology, insert_splits
from digitslite.caffe.upgrade import apply_snapshot_prefix_default, upgrade_net, upgrade_solver
from digitslite.fileio import write_atomically

__all__ = [
    "PrototxtError", "SourceMap", "check_topology", "compose_state", "filter_net", "insert_splits",
    "net_to_text", "parse_net", "parse_net_located", "parse_solver", "read_net", "read_net_located",
    "read_solver", "state_meets_rule", "upgrade_net", "upgrade_solver", "write_net", "write_solver",
]

PathLike = str | os.PathLike
BINARY_SUFFIXES = (".caffemodel", ".binaryproto")
_TEXT_CONTROL_BYTES = frozenset(b"\t\n\v\f\r")
_SNIFFED_BYTES = 4096


def parse_net(text: str, source: str = "<string>") -> caffe_pb2.NetParameter:
    """A network from prototxt text, upgraded to the current format."""
    return parse_net_located(text, source)[0]


def parse_net_located(text: str, source: str = "<string>") -> tuple[caffe_pb2.NetParameter, SourceMap]:
    """A network from prototxt text, upgraded, with the places of its layers in the text."""
    net = caffe_pb2.NetParameter()
    source_map = parse_text(text, source, net).source_map
    _require_layers(net, source)
    return upgrade_net(net, source_map), source_map


def read_net(path: PathLike) -> caffe_pb2.NetParameter:
    """A network from a text prototxt or a binary NetParameter (.caffemodel), told apart by content."""
    return read_net_located(path)[0]


def read_net_located(path: PathLike) -> tuple[caffe_pb2.NetParameter, SourceMap]:
    """As read_net, with the layer places; a binary file has none (an empty map)."""
    source = os.fspath(path)
    data = _read_bytes(source)
    if _looks_like_text(data):
        return parse_net_located(_decode(data), source)
    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(data)
    except DecodeError:
        raise _not_binary_error(data, source) from None
    _require_layers(net, source)
    source_map = SourceMap(path=source)
    return upgrade_net(net, source_map), source_map


def net_to_text(net: caffe_pb2.NetParameter) -> str:
    """Prototxt text of `net` (unknown binary-only fields cannot be shown in text and are left out)."""
    return text_format.MessageToString(net, as_utf8=True)


def write_net(net: caffe_pb2.NetParameter, path: PathLike, binary: bool | None = None) -> None:
    """Write `net` atomically; binary by default for .caffemodel / .binaryproto, else text."""
    if binary is None:
        binary = os.fspath(path).lower().endswith(BINARY_SUFFIXES)
    write_atomically(path, net.SerializeToString() if binary else net_to_text(net).encode("utf-8"))


def parse_solver(text: str, source: str = "<string>") -> caffe_pb2.SolverParameter:
    """A solver from prototxt text, its deprecated solver_type upgraded to `type`."""
    solver = caffe_pb2.SolverParameter()
    source_map = parse_text(text, source, solver).source_map
    return upgrade_solver(solver, source_map)


def read_solver(path: PathLike) -> caffe_pb2.SolverParameter:
    """A solver file, upgraded, with Caffe's snapshot_prefix default taken from its path (§1.4)."""
    source = os.fspath(path)
    data = _read_bytes(source)
    if not _looks_like_text(data):
        raise PrototxtError("is not a text solver file (it holds binary data)", path=source,
                            hint="give the solver .prototxt, not a weights or database file")
    return apply_snapshot_prefix_default(parse_solver(_decode(data), source), source)


def write_solver(solver: caffe_pb2.SolverParameter, path: PathLike) -> None:
    """Write `solver` as prototxt text, atomically."""
    write_atomically(path, text_format.MessageToString(solver, as_utf8=True).encode("utf-8"))


def _require_layers(net: caffe_pb2.NetParameter, source: str) -> None:
    if len(net.layer) == 0 and len(net.layers) == 0 and len(net.input) == 0:
        raise PrototxtError("is not a Caffe network: it defines no layers", path=source,
                            hint="give a network definition with `layer { ... }` blocks (or a .caffemodel)")


def _read_bytes(source: str) -> bytes:
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise PrototxtError(f"cannot read the file: {exc.strerror or exc}", path=source,
                            hint="check that the path exists and is a readable file") from None


def _looks_like_text(data: bytes) -> bool:
    """Binary protobuf always has length and tag bytes below 0x20; prototxt text never does."""
    return _first_control_byte(data[:_SNIFFED_BYTES]) is None


def _first_control_byte(data: bytes) -> int | None:
    controls = (offset for offset, byte in enumerate(data) if byte < 0x20 and byte not in _TEXT_CONTROL_BYTES)
    return next(controls, None)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _not_binary_error(data: bytes, source: str) -> PrototxtError:
    """Either a damaged binary file, or a text file with a stray control character: say which."""
    offset = _first_control_byte(data) or 0
    head = data[:offset]
    if head.count(b"\n") > 0 and _first_control_byte(data[offset + 1:offset + _SNIFFED_BYTES]) is None:
        line = head.count(b"\n") + 1
        column = offset - (head.rfind(b"\n") + 1) + 1
        return PrototxtError(f"holds a control character (byte 0x{data[offset]:02x}) in its text",
                             path=source, line=line, column=column,
                             hint="remove that character and save the file as text")
    return PrototxtError("is not a valid binary NetParameter (nor a text prototxt)", path=source,
                         hint="the file may be truncated or of another kind; give a .prototxt or .caffemodel")

