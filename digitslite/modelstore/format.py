"""The model store's two kinds of index file, checked with errors that name the file, key and fix.

A store is DIGITS' static tree: `master.json` {"msg", "children"} names the entry folders, and each
entry folder holds `info.json` with DIGITS' keys ("name", "framework", "snapshot file",
"model file" / "network file", "labels file", ...) plus digitslite's: "files" (a digest for every
file of the entry, so an import can be verified), "task", "classes", "palette", "metrics",
"input size", "mean", "source", "license", "note", and optionally "convolutionalize".

A file record is {"sha256": hex, "size": bytes}; a file kept elsewhere (public weights too large to
mirror) also has "url", and may carry only the digest its publisher gave ({"sha1": hex}) plus an
"approximate size" for the listing. Whatever digests a record gives are all verified.

"input size" is {"channels", "height", "width"} of the deploy input; "mean" lists per-channel values
(in the network's channel order, BGR for Caffe models) to subtract from an image before the deploy
net, or is null when the network subtracts its own (a Power shift). "convolutionalize":
{"classifier network file": ...} says the snapshot holds that classifier's weights, which the import
turns into weights of the entry's deploy net by net surgery.

An entry without "snapshot file" is a network definition only: it lists and imports (its network
checked and converted) but brings no weights; a model made from it starts from its fillers.
"""
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitslite.errors import UserError
from digitslite.tasks import DEFAULT_TASK
from digitslite.tasks import TASKS as TASK_RECORDS

MASTER_FILE = "master.json"
INFO_FILE = "info.json"
LABELS_FILE = "labels.txt"  # the class names of an entry; its other files keep their job-folder names
DIGESTS = ("sha256", "sha1")
FILE_KEYS = ("snapshot file", "model file", "network file", "deploy file", "train_val file", "solver file",
             "labels file", "mean file")
TASKS = (*(task.store_task for task in TASK_RECORDS.values()), "classification")
SEGMENTATION = DEFAULT_TASK.store_task
_CHUNK = 1 << 20
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class StoreFormatError(UserError):
    """A master.json or info.json that does not follow the store format."""


class ChecksumError(UserError):
    """A file whose digest or size differs from what its info.json promises."""


def is_plain_name(name: str) -> bool:
    """A file or folder name without any path in it, so a store cannot write outside an entry."""
    return bool(_PLAIN_NAME.match(name)) and ".." not in name


def _problem(where: str, what: str, fix: str) -> StoreFormatError:
    return StoreFormatError(f"{where}: {what}; {fix}")


# ----------------------------------------------------------------------------------------------
# master.json


@dataclass(frozen=True)
class Master:
    msg: str
    children: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"msg": self.msg, "children": list(self.children)}


def parse_master(data: Any, where: str) -> Master:
    """master.json's content; `where` names the file in errors."""
    if not isinstance(data, dict):
        raise _problem(where, "is not a JSON object", 'write {"msg": "...", "children": ["entry", ...]}')
    children = data.get("children")
    if not isinstance(children, list) or not all(isinstance(child, str) for child in children):
        raise _problem(where, '"children" is missing or is not a list of folder names',
                       'list the entry folders, e.g. "children": ["fcn8s-voc"]')
    bad = [child for child in children if not is_plain_name(child)]
    if bad:
        raise _problem(where, f'"children" holds {bad[0]!r}, which is not a plain folder name',
                       "name entry folders with letters, digits, '.', '_', '+' or '-' only")
    msg = data.get("msg", "")
    return Master(msg if isinstance(msg, str) else str(msg), children)


# ----------------------------------------------------------------------------------------------
# info.json


@dataclass(frozen=True)
class FileRecord:
    """One file of an entry: its digests, its size when known, and its URL when it lives elsewhere."""

    name: str
    digests: dict[str, str]
    size: int | None = None
    url: str | None = None
    approximate_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = dict(self.digests)
        if self.size is not None:
            record["size"] = self.size
        if self.url is not None:
            record["url"] = self.url
        if self.approximate_size is not None:
            record["approximate size"] = self.approximate_size
        return record


def _parse_file_record(name: str, data: Any, where: str) -> FileRecord:
    place = f'"files" -> {name!r}'
    if not is_plain_name(name):
        raise _problem(where, f"{place} is not a plain file name",
                       "keep every file directly in the entry folder")
    if not isinstance(data, dict):
        raise _problem(where, f"{place} is not an object", 'write {"sha256": "<hex>", "size": <bytes>}')
    digests = {algorithm: data[algorithm] for algorithm in DIGESTS if algorithm in data}
    if not digests:
        raise _problem(where, f"{place} has no checksum", "add its sha256 (`digitslite store index DIR` "
                       "computes it for files in the store)")
    for algorithm, value in digests.items():
        width = hashlib.new(algorithm).digest_size * 2
        if not (isinstance(value, str) and re.fullmatch(f"[0-9a-f]{{{width}}}", value)):
            raise _problem(where, f"{place} {algorithm} is not {width} lower-case hex digits",
                           "fix the digest")
    size, approximate, url = data.get("size"), data.get("approximate size"), data.get("url")
    for key, value in (("size", size), ("approximate size", approximate)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise _problem(where, f"{place} {key} is not a byte count", "give a whole number of bytes")
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise _problem(where, f"{place} url is not an http(s) URL",
                       "give the full http:// or https:// address")
    return FileRecord(name, digests, size, url, approximate)


def parse_file_records(files: Any, where: str) -> dict[str, FileRecord]:
    """The "files" object of an info.json: file name -> record."""
    if not isinstance(files, dict):
        raise _problem(where, '"files" is not an object', 'write "files": {"<name>": {"sha256": ...}, ...}')
    return {name: _parse_file_record(name, record, where) for name, record in files.items()}


@dataclass(frozen=True)
class ModelInfo:
    """A parsed info.json. `data` keeps every key (unknown ones survive a rewrite)."""

    data: dict[str, Any]
    files: dict[str, FileRecord]

    def _get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def framework(self) -> str:
        return self.data["framework"]

    @property
    def task(self) -> str:
        return self._get("task", SEGMENTATION)

    @property
    def snapshot_file(self) -> str | None:
        return self._get("snapshot file")

    @property
    def network_file(self) -> str:
        """The network definition: DIGITS' "model file", else "network file", else the deploy file."""
        return self._get("model file") or self._get("network file") or self.data["deploy file"]

    @property
    def deploy_file(self) -> str | None:
        return self._get("deploy file")

    @property
    def classes(self) -> list[str] | None:
        return self._get("classes")

    @property
    def palette(self) -> list[list[int]] | None:
        return self._get("palette")

    @property
    def metrics(self) -> dict[str, Any]:
        return self._get("metrics") or {}

    @property
    def convolutionalize(self) -> dict[str, Any] | None:
        return self._get("convolutionalize")

    def named_files(self) -> dict[str, str]:
        """DIGITS key -> file name, for the keys the entry uses."""
        return {key: self.data[key] for key in FILE_KEYS if self.data.get(key)}

    def to_dict(self) -> dict[str, Any]:
        return {**self.data, "files": {name: record.to_dict() for name, record in self.files.items()}}


def _require_type(data: dict, key: str, kind: type | tuple, where: str, fix: str) -> None:
    if key in data and data[key] is not None and not isinstance(data[key], kind):
        raise _problem(where, f'"{key}" has the wrong type', fix)


def parse_info(data: Any, where: str) -> ModelInfo:
    """info.json's content, checked; `where` names the file in errors."""
    if not isinstance(data, dict):
        raise _problem(where, "is not a JSON object", 'write {"name": ..., "framework": "caffe", ...}')
    for key in ("name", "framework"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise _problem(where, f'"{key}" is missing', f'add "{key}" (DIGITS requires it)')
    if not any(data.get(key) for key in ("model file", "network file", "deploy file")):
        raise _problem(where, "no network is named",
                       'add "model file" (or "network file") naming the prototxt')
    if not isinstance(data.get("files"), dict):
        raise _problem(where, '"files" is missing: the entry has no checksums',
                       "digitslite imports only verified files; run `digitslite store index DIR` on the "
                       "store")
    files = parse_file_records(data["files"], where)
    for key, name in ((key, data.get(key)) for key in FILE_KEYS):
        if name is None:
            continue
        if not isinstance(name, str) or name not in files:
            raise _problem(where, f'"{key}" names {name!r}, which "files" does not list',
                           'list every file of the entry in "files" with its checksum')
    _require_type(data, "task", str, where, f"use one of: {', '.join(TASKS)}")
    _require_type(data, "classes", list, where, 'give the class names as a list, e.g. ["background", "cat"]')
    _require_type(data, "metrics", dict, where, 'give metrics as an object, e.g. {"mean_iu": 0.62}')
    _require_type(data, "mean", list, where, "give one value per input channel, in the network's order")
    _require_type(data, "convolutionalize", dict, where,
                  'write {"classifier network file": "<prototxt of the classifier the weights fit>"}')
    _check_palette(data, where)
    _check_convolutionalize(data, files, where)
    return ModelInfo(data, files)


def _check_palette(data: dict, where: str) -> None:
    palette, classes = data.get("palette"), data.get("classes")
    if palette is None:
        return
    if not (isinstance(palette, list) and all(map(_is_colour, palette))):
        raise _problem(where, '"palette" is not a list of [r, g, b] colours',
                       "give one [r, g, b] (0-255) per class")
    if classes is not None and len(palette) != len(classes):
        raise _problem(where, f'"palette" has {len(palette)} colours for {len(classes)} classes',
                       "give exactly one colour per class")


def _is_colour(colour: Any) -> bool:
    return isinstance(colour, list) and len(colour) == 3 and all(
        isinstance(value, int) and 0 <= value <= 255 for value in colour)


def _check_convolutionalize(data: dict, files: Mapping[str, FileRecord], where: str) -> None:
    surgery = data.get("convolutionalize")
    if surgery is None:
        return
    classifier = surgery.get("classifier network file")
    if classifier not in files or not data.get("snapshot file"):
        raise _problem(where, '"convolutionalize" needs "classifier network file" (listed in "files") and a '
                       '"snapshot file" holding that classifier\'s weights', "name both files")


# ----------------------------------------------------------------------------------------------
# checksums


def file_digests(path: str | os.PathLike, algorithms: Iterable[str] = ("sha256",)) -> dict[str, str]:
    """Hex digests of a file, every algorithm in one pass."""
    hashers = {algorithm: hashlib.new(algorithm) for algorithm in algorithms}
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            for hasher in hashers.values():
                hasher.update(chunk)
    return {algorithm: hasher.hexdigest() for algorithm, hasher in hashers.items()}


def verify_file(path: str | os.PathLike, record: FileRecord, source: str) -> None:
    """Raise ChecksumError unless the file has the record's size and every digest it gives.

    `source` says where the file came from, for the message.
    """
    size = Path(path).stat().st_size
    if record.size is not None and size != record.size:
        raise ChecksumError(f"{record.name} from {source}: checksum mismatch: {size} bytes instead of the "
                            f"{record.size} that info.json gives; {_MISMATCH_FIX}")
    actual = file_digests(path, record.digests)
    for algorithm, expected in record.digests.items():
        if actual[algorithm] != expected:
            raise ChecksumError(f"{record.name} from {source}: checksum mismatch: {algorithm} is "
                                f"{actual[algorithm]}, info.json expects {expected}; {_MISMATCH_FIX}")


_MISMATCH_FIX = ("the file was damaged on the way or is not the published one, so nothing was imported; "
                 "import again, and if it persists ask the store's maintainer (after a deliberate change, "
                 "`digitslite store index DIR` rewrites the checksums)")
