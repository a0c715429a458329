"""Importing a store entry: every file fetched (resumably), every checksum verified, old FCN files
converted, and only then the folder renamed into place, so a failed import never becomes a model.

The files gather in a hidden folder beside the destination (`.NAME.importing`). A network failure
(or Ctrl-C) in the middle of a download leaves it there, so importing again to the same destination
resumes; any other failure (a checksum mismatch, a broken entry, a host never reached) removes it.
"""
import datetime
import os
import shutil
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitslite.caffe.caffemodel import WeightsError, match_weights, read_caffemodel
from digitslite.caffe.paramshapes import param_shapes
from digitslite.caffe.prototxt import filter_net, read_net, write_net
from digitslite.errors import UserError
from digitslite.store import client
from digitslite.store.convolutionalize import convolutionalize_weights
from digitslite.store.entries import write_info
from digitslite.store.format import (
    INFO_FILE,
    ChecksumError,
    FileRecord,
    ModelInfo,
    is_plain_name,
    parse_info,
    verify_file,
)
from digitslite.store.legacy import derive_missing_crop_offsets, group_diagonal_deconvolutions, set_groups

NETWORK_KEYS = ("model file", "network file", "deploy file", "train_val file")


@dataclass(frozen=True)
class ImportedModel:
    """An imported model folder: a store entry whose info.json now also says where it came from."""

    path: Path
    info: ModelInfo
    source: str
    conversions: list[str]

    @property
    def network(self) -> Path:
        return self.path / self.info.network_file

    @property
    def deploy(self) -> Path | None:
        return self.path / self.info.deploy_file if self.info.deploy_file else None

    @property
    def weights(self) -> Path | None:
        return self.path / self.info.snapshot_file if self.info.snapshot_file else None

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "name": self.info.name, "source": self.source,
                "network": str(self.network), "deploy": _text(self.deploy), "weights": _text(self.weights),
                "classes": self.info.classes, "conversions": self.conversions}


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def partial_import_dir(dest: Path) -> Path:
    """Where an import into `dest` gathers its files until they are all verified."""
    return dest.with_name(f".{dest.name}.importing")


def import_model(store_url: str, name: str, dest_dir: str | os.PathLike,
                 progress: client.Progress | None = None,
                 local_files: Mapping[str, str | os.PathLike] | None = None, *,
                 group_upscores: bool = False,
                 policy: client.FetchPolicy = client.DEFAULT_POLICY) -> ImportedModel:
    """Import entry `name` of the store at `store_url` (URL or folder) into the new folder `dest_dir`.

    `local_files` maps a file name of the entry, or a DIGITS key such as "snapshot file", to a copy
    already on this machine, used instead of a download (and verified all the same). With
    `group_upscores`, ungrouped diagonal upsampling layers (fcn.berkeleyvision.org) become DIGITS'
    grouped ones. Missing Crop offsets are always derived.
    """
    if not is_plain_name(name):
        raise UserError(f"{name!r} is not a model name of a store; `digitslite store list {store_url}` "
                        "shows them")
    dest = Path(dest_dir)
    if dest.exists():
        raise UserError(f"{dest} already exists; choose another destination or remove it")
    entry = client.join(store_url, name)
    info_location = client.join(entry, INFO_FILE)
    info = parse_info(client.read_index_file(info_location, policy), info_location)
    if info.framework.lower() != "caffe":
        raise UserError(f"{info_location}: the framework is {info.framework!r}; digitslite runs Caffe "
                        "models only")
    local = _local_files(local_files or {}, info, info_location)
    staging = partial_import_dir(dest)
    staging.mkdir(parents=True, exist_ok=True)
    try:
        for record in info.files.values():
            _fetch(entry, record, staging, local.get(record.name), progress, policy)
        data, notes = _convert(staging, info, group_upscores)
        data.update({"imported from": entry, "conversions": notes,
                     "imported": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")})
        kept = {file: record for file, record in info.files.items() if (staging / file).exists()}
        imported = write_info(staging, data, kept)
        _check_weights_fit(staging, imported, entry)
        os.rename(staging, dest)
    except BaseException as exc:
        interrupted = isinstance(exc, client.StoreUnreachable | KeyboardInterrupt)
        if not (interrupted and any(part.stat().st_size for part in staging.glob("*.part"))):
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return ImportedModel(dest, imported, entry, notes)


def _local_files(given: Mapping[str, str | os.PathLike], info: ModelInfo, where: str) -> dict[str, Path]:
    named = info.named_files()
    local = {}
    for key, path in given.items():
        file = named.get(key, key)
        if file not in info.files:
            raise UserError(f"a local file is given for {key!r}, which {where} does not list; "
                            f"its files are: {', '.join(info.files)}")
        local[file] = Path(path)
    return local


def _store_copy(entry: str, name: str) -> str:
    """The location of a file inside the store entry; in a folder store it must really lie there (a
    link out of the store would let the store hand out any file of its host)."""
    location = client.join(entry, name)
    if client.is_http(location):
        return location
    folder = client.local_path(entry).resolve()
    real = client.local_path(location).resolve()
    if not real.is_relative_to(folder):
        raise UserError(f"{location}: the file links to {real}, outside the store entry {folder}; copy the "
                        "file into the entry instead of linking it")
    return location


def _allowed_url(entry: str, url: str | None, policy: client.FetchPolicy) -> str | None:
    """`url`, or a refusal when the policy limits hosts and it names another than the store's."""
    if url is None or policy.url_hosts is None:
        return url
    host = urllib.parse.urlsplit(url).netloc.lower()
    own = urllib.parse.urlsplit(entry).netloc.lower() if client.is_http(entry) else None
    if host == own or host in policy.url_hosts:
        return url
    raise UserError(f"{entry}: a file's url names the host {host!r}, and this server fetches only from the "
                    "store's own host; put the file beside info.json in the store, or add the host to "
                    "DIGITSLITE_STORE_FETCH_HOSTS")


def _fetch(entry: str, record: FileRecord, staging: Path, local: Path | None,
           progress: client.Progress | None, policy: client.FetchPolicy) -> None:
    """Bring one file into `staging` and verify it. A remote file (one with a URL) is looked for in
    the store first, so a mirror that holds the weights beside info.json serves them."""
    target = staging / record.name
    if target.exists():
        try:
            verify_file(target, record, "an earlier import")
            return
        except ChecksumError:
            target.unlink()
    sources = [str(local)] if local else [_store_copy(entry, record.name),
                                          *filter(None, [_allowed_url(entry, record.url, policy)])]
    for index, source in enumerate(sources):
        try:
            client.download(source, target, progress=progress, policy=policy)
            break
        except client.StoreNotFound:
            if index == len(sources) - 1:
                raise
    try:
        verify_file(target, record, source)
    except ChecksumError:
        target.unlink()
        raise


def _convert(staging: Path, info: ModelInfo, group_upscores: bool) -> tuple[dict[str, Any], list[str]]:
    """Apply the conversions the entry needs; returns its info.json data (without "files") and notes."""
    data = {key: value for key, value in info.data.items() if key != "files"}
    notes = []
    if info.convolutionalize:
        notes.append(_convolutionalize(staging, info, data))
    grouped = []
    if group_upscores and data.get("snapshot file"):
        grouped = _group_weights(staging / data["snapshot file"])
    notes += [f"Deconvolution '{layer}': diagonal weights made grouped (DIGITS' topology)"
              for layer in grouped]
    for file in dict.fromkeys(data[key] for key in NETWORK_KEYS if data.get(key)):
        net = read_net(staging / file)
        converted, crop_notes = derive_missing_crop_offsets(net)
        converted = set_groups(converted, grouped)
        if converted != net:
            write_net(converted, staging / file)
        notes += [f"{file}: {note}" for note in crop_notes]
    return data, notes


def _convolutionalize(staging: Path, info: ModelInfo, data: dict[str, Any]) -> str:
    """Turn the entry's classifier weights into weights of its FCN deploy net (replacing them)."""
    if not info.deploy_file:
        raise UserError(f"entry '{info.name}': \"convolutionalize\" needs a \"deploy file\" (the FCN to "
                        "make); add it to info.json")
    classifier_weights = staging / info.snapshot_file
    deploy = read_net(staging / info.deploy_file)
    out = staging / f"{deploy.name if is_plain_name(deploy.name) else 'convolutionalized'}.caffemodel"
    actions = convolutionalize_weights(read_net(staging / info.convolutionalize["classifier network file"]),
                                       classifier_weights, deploy, out)
    classifier_weights.unlink()
    data.pop("convolutionalize")
    data["snapshot file"] = out.name
    data["surgery"] = [action.as_dict() for action in actions]
    return f"{info.snapshot_file}: convolutionalized into {out.name} by net surgery"


def _group_weights(weights: Path) -> list[str]:
    model = read_caffemodel(weights)
    grouped = group_diagonal_deconvolutions(model)
    if grouped:
        write_net(model, weights, binary=True)
    return grouped


def _check_weights_fit(folder: Path, info: ModelInfo, entry: str) -> None:
    """The weights must load into the deploy net (when the entry has both), or the entry is broken."""
    if not (info.snapshot_file and info.deploy_file):
        return
    deploy = filter_net(read_net(folder / info.deploy_file))
    try:
        match_weights(read_caffemodel(folder / info.snapshot_file), param_shapes(deploy),
                      source_name=info.snapshot_file)
    except WeightsError as exc:
        raise UserError(f"{entry}: the entry's weights do not fit its deploy network ({exc}); "
                        "the store entry is inconsistent, tell its maintainer") from None
