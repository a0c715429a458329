"""Unpacking uploaded zip and tar archives without letting a member escape the target folder.

Refused: absolute names, `..` anywhere in a name, links (symbolic or hard), devices and other
special files, and more content than the size limit (a zip bomb). Files are streamed and counted,
never trusted by their headers.
"""
import lzma
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from digitslite.errors import UserError

MAX_MEMBERS = 10_000
MAX_RATIO = 100  # unpacked bytes per archive byte; images barely compress, zip bombs a million-fold
RATIO_FLOOR = 1 << 20
_CHUNK = 1 << 20
_ENCRYPTED = 0x1  # general purpose flag bit 0 of a zip member
_ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})


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
    """What may still be written: the smaller of the size limit and MAX_RATIO times the archive's own
    size (with a floor, so small archives of small files always fit)."""

    def __init__(self, max_bytes: int, archive_bytes: int, max_ratio: int, field: str):
        self.ratio_bytes = max(archive_bytes * max_ratio, RATIO_FLOOR)
        self.max_bytes = max_bytes
        self.max_ratio = max_ratio
        self.left = min(max_bytes, self.ratio_bytes)
        self.field = field

    def refusal(self) -> "UnsafeArchiveError":
        if self.ratio_bytes < self.max_bytes:
            return UnsafeArchiveError(f"{self.field}: the archive unpacks to more than {self.max_ratio} "
                                      "times its own size (a zip bomb?); pack the files without such "
                                      "compression", self.field)
        limit_mib = self.max_bytes // (1024 * 1024)
        return UnsafeArchiveError(f"{self.field}: the archive unpacks to more than {limit_mib} MiB, more "
                                  "than this server accepts (DIGITSLITE_MAX_UNPACK_MB)", self.field)

    def declare(self, size: int) -> None:
        """Refuse before extraction what the archive's own directory already says is too much."""
        if size > self.left:
            raise self.refusal()

    def copy(self, source: BinaryIO, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as out:
            while chunk := source.read(_CHUNK):
                self.left -= len(chunk)
                if self.left < 0:
                    raise self.refusal()
                out.write(chunk)


def _size_of(source: BinaryIO | Path) -> int:
    if isinstance(source, Path):
        return source.stat().st_size
    position = source.seek(0, 2)
    source.seek(0)
    return position


def extract_zip(source: BinaryIO | Path, target: Path, *, max_bytes: int, field: str,
                max_members: int = MAX_MEMBERS, max_ratio: int = MAX_RATIO) -> None:
    """Unpack a zip archive into `target` (which must exist), refusing unsafe members. The member
    count and the declared sizes are checked before anything is written."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnsafeArchiveError(f"{field}: not a readable zip archive ({exc})", field) from None
    budget = _Budget(max_bytes, _size_of(source), max_ratio, field)
    with archive:
        members = archive.infolist()
        if len(members) > max_members:
            raise UnsafeArchiveError(f"{field}: more than {max_members} files in the archive; send fewer "
                                     "(DIGITSLITE_MAX_ARCHIVE_MEMBERS)", field)
        budget.declare(sum(member.file_size for member in members))
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
            if member.flag_bits & _ENCRYPTED:
                raise UnsafeArchiveError(f"{field}: member {member.filename!r} is encrypted; send an archive "
                                         "without a password", field)
            if member.compress_type not in _ZIP_METHODS:
                raise UnsafeArchiveError(f"{field}: member {member.filename!r} uses compression method "
                                         f"{member.compress_type}, which this server cannot unpack; use "
                                         "deflate (the usual zip), bzip2 or lzma", field)
            try:
                with archive.open(member) as data:
                    budget.copy(data, target / relative)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError,
                    zlib.error) as exc:
                raise UnsafeArchiveError(f"{field}: member {member.filename!r} cannot be read ({exc})",
                                         field) from None


def extract_tar(source: BinaryIO | Path, target: Path, *, max_bytes: int, field: str,
                max_members: int = MAX_MEMBERS, max_ratio: int = MAX_RATIO) -> None:
    """Unpack a tar archive (plain, gz, bz2 or xz) into `target`, refusing unsafe members."""
    opener = {"name": source} if isinstance(source, Path) else {"fileobj": source}
    budget = _Budget(max_bytes, _size_of(source), max_ratio, field)
    try:
        with tarfile.open(mode="r:*", **opener) as archive:
            _extract_tar_members(archive, target, budget, max_members, field)
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise UnsafeArchiveError(f"{field}: not a readable tar archive ({exc})", field) from None


def _extract_tar_members(archive: tarfile.TarFile, target: Path, budget: _Budget, max_members: int,
                         field: str) -> None:
    count = 0
    for member in archive:
        count += 1
        if count > max_members:
            raise UnsafeArchiveError(f"{field}: more than {max_members} files in the archive; send fewer "
                                     "(DIGITSLITE_MAX_ARCHIVE_MEMBERS)", field)
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


def extract_archive(source: Path, target: Path, *, max_bytes: int, field: str,
                    max_members: int = MAX_MEMBERS) -> None:
    """Unpack a zip or tar archive, chosen by its content, not its name."""
    if zipfile.is_zipfile(source):
        extract_zip(source, target, max_bytes=max_bytes, field=field, max_members=max_members)
    elif tarfile.is_tarfile(source):
        extract_tar(source, target, max_bytes=max_bytes, field=field, max_members=max_members)
    else:
        raise UnsafeArchiveError(f"{field}: the upload is neither a zip nor a tar archive", field)

