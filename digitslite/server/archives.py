"""Unpacking uploaded zip and tar archives without letting a member escape the target folder.

Refused: absolute names, `..` anywhere in a name, links (symbolic or hard), devices and other
special files, and more content than the size limit (a zip bomb). Files are streamed and counted,
never trusted by their headers.
"""
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from digitslite.errors import UserError

MAX_MEMBERS = 200_000
_CHUNK = 1 << 20


class UnsafeArchiveError(UserError):
    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def _safe_relative(name: str, field: str) -> PurePosixPath | None:
    """The member's path relative to the target, None for the archive root entry, or a refusal."""
    if "\x00" in name or "\\" in name:
        raise UnsafeArchiveError(f"{field}: member {name!r} has a NUL or backslash in its name", field)
    path = PurePosixPath(name)
    if path.is_absolute() or (path.parts and path.parts[0].endswith(":")):
        raise UnsafeArchiveError(f"{field}: member {name!r} has an absolute path; archives must hold "
                                 "relative paths only", field)
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{field}: member {name!r} climbs out of the archive with '..'", field)
    parts = [part for part in path.parts if part not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


class _Budget:
    def __init__(self, max_bytes: int, field: str):
        self.left = max_bytes
        self.max_bytes = max_bytes
        self.field = field

    def copy(self, source: BinaryIO, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as out:
            while chunk := source.read(_CHUNK):
                self.left -= len(chunk)
                if self.left < 0:
                    limit_mib = self.max_bytes // (1024 * 1024)
                    raise UnsafeArchiveError(f"{self.field}: the archive unpacks to more than {limit_mib} "
                                             "MiB, more than this server accepts", self.field)
                out.write(chunk)


def extract_zip(source: BinaryIO | Path, target: Path, *, max_bytes: int, field: str) -> None:
    """Unpack a zip archive into `target` (which must exist), refusing unsafe members."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeArchiveError(f"{field}: not a readable zip archive ({exc})", field) from None
    budget = _Budget(max_bytes, field)
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise UnsafeArchiveError(f"{field}: more than {MAX_MEMBERS} files in the archive", field)
        for member in members:
            relative = _safe_relative(member.filename, field)
            mode = member.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafeArchiveError(f"{field}: member {member.filename!r} is a link; archives may hold "
                                         "only files and folders", field)
            if relative is None:
                continue
            if member.is_dir():
                (target / relative).mkdir(parents=True, exist_ok=True)
                continue
            try:
                with archive.open(member) as data:
                    budget.copy(data, target / relative)
            except (zipfile.BadZipFile, OSError) as exc:
                raise UnsafeArchiveError(f"{field}: member {member.filename!r} cannot be read ({exc})",
                                         field) from None


def extract_tar(source: BinaryIO | Path, target: Path, *, max_bytes: int, field: str) -> None:
    """Unpack a tar archive (plain, gz, bz2 or xz) into `target`, refusing unsafe members."""
    opener = {"name": source} if isinstance(source, Path) else {"fileobj": source}
    try:
        archive = tarfile.open(mode="r:*", **opener)  # noqa: SIM115 - closed by the `with` below
    except (tarfile.TarError, OSError) as exc:
        raise UnsafeArchiveError(f"{field}: not a readable tar archive ({exc})", field) from None
    budget = _Budget(max_bytes, field)
    count = 0
    with archive:
        for member in archive:
            count += 1
            if count > MAX_MEMBERS:
                raise UnsafeArchiveError(f"{field}: more than {MAX_MEMBERS} files in the archive", field)
            relative = _safe_relative(member.name, field)
            if not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(f"{field}: member {member.name!r} is a link or special file; "
                                         "archives may hold only files and folders", field)
            if relative is None:
                continue
            if member.isdir():
                (target / relative).mkdir(parents=True, exist_ok=True)
                continue
            data = archive.extractfile(member)
            if data is None:
                raise UnsafeArchiveError(f"{field}: member {member.name!r} cannot be read", field)
            with data:
                budget.copy(data, target / relative)


def extract_archive(source: Path, target: Path, *, max_bytes: int, field: str) -> None:
    """Unpack a zip or tar archive, chosen by its content, not its name."""
    if zipfile.is_zipfile(source):
        extract_zip(source, target, max_bytes=max_bytes, field=field)
    elif tarfile.is_tarfile(source):
        extract_tar(source, target, max_bytes=max_bytes, field=field)
    else:
        raise UnsafeArchiveError(f"{field}: the upload is neither a zip nor a tar archive", field)

