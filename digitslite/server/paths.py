"""Server-side paths in requests: resolved (symbolic links followed) and kept inside the data roots."""
from collections.abc import Iterator
from pathlib import Path, PurePath

from google.protobuf.message import Message

from digitslite.server.errors import ApiError

# The string fields of Caffe's messages that name a file or folder.
PATH_FIELDS = frozenset({"source", "mean_file", "meanfile", "file_name", "root_folder", "snapshot_prefix",
                         "net", "train_net", "test_net"})


def _refuse_outside(resolved: Path, roots: tuple[Path, ...], field: str, named: str, moved: str) -> None:
    """403 unless `resolved` is a data root or lies inside one; `named` is how the request named it,
    `moved` what the user should move under a root."""
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        listed = ", ".join(str(root) for root in roots) or "none"
        raise ApiError(403, f"{field}: {named} is outside the data roots ({listed}); move the {moved} under "
                            "one of them or add its folder to DIGITSLITE_DATA_ROOTS", field)


def resolve_data_path(raw: str, roots: tuple[Path, ...], field: str, *, folder: bool = True) -> Path:
    """The real path that `raw` names, refused (403) unless it lies inside one of `roots`.

    A relative path is taken relative to the first data root. `roots` are already resolved.
    """
    if not roots:
        raise ApiError(403, f"{field}: this server has no data roots, so it reads no server-side path; "
                            "upload the files, or start the server with DIGITSLITE_DATA_ROOTS set", field)
    if "\x00" in raw:
        raise ApiError(422, f"{field}: the path contains a NUL character", field)
    try:
        path = Path(raw).expanduser()
        resolved = (path if path.is_absolute() else roots[0] / path).resolve()
        _refuse_outside(resolved, roots, field, raw, "data")
        if folder and not resolved.is_dir():
            raise ApiError(422, f"{field}: {raw} is not an existing folder", field)
        if not folder and not resolved.is_file():
            raise ApiError(422, f"{field}: {raw} is not an existing file", field)
    except (OSError, RuntimeError) as exc:  # a name too long, a link loop, an unreadable folder
        reason = getattr(exc, "strerror", None) or exc
        raise ApiError(422, f"{field}: {raw} cannot be used as a path ({reason})", field) from None
    return resolved


def named_paths(message: Message, where: str = "") -> Iterator[tuple[str, str]]:
    """(place, path) for every path a Caffe message names: ("layer 'data' transform_param.mean_file", ...)."""
    for descriptor, value in message.ListFields():
        repeated = descriptor.is_repeated
        values = value if repeated else [value]
        for position, item in enumerate(values):
            name = f"{where}{descriptor.name}" + (f"[{position}]" if repeated else "")
            if descriptor.name == "layer" and getattr(item, "name", ""):
                name = f"layer {item.name!r}"
            if isinstance(item, Message):
                yield from named_paths(item, f"{name} " if descriptor.name == "layer" else f"{name}.")
            elif descriptor.name in PATH_FIELDS and isinstance(item, str) and item:
                yield name, item


def check_named_paths(message: Message, roots: tuple[Path, ...], field: str) -> None:
    """Apply the data-root rule to every path a net or solver names, before anything opens it: an
    absolute path must lie inside a data root, a relative one (taken inside the job's own files)
    must not climb out with '..'. Nothing is opened here, so a refusal says nothing about whether
    the file exists."""
    for place, raw in named_paths(message):
        if "\x00" in raw or ".." in PurePath(raw).parts:
            raise ApiError(403, f"{field}: {place} {raw!r} climbs out of the job's files; name a file inside "
                                "the data roots by its absolute path", field)
        if PurePath(raw).is_absolute():
            _refuse_outside(Path(raw).resolve(), roots, field, f"{place} {raw}", "file")
