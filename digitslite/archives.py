"""Uploaded zip and tar archives: listed and checked without unpacking (what a request may afford),
and unpacked without letting a member escape the target folder or outgrow the limits (a job's work).

Refused: absolute names, `..` anywhere in a name, links (symbolic or hard), devices and other
special files, encrypted members and compression methods Python cannot read, more members than the
limit, and more content than the size limit or the compression ratio allows (a zip bomb). Listing
trusts the sizes the archive declares; unpacking streams and counts every byte it writes.
"""
import lzma
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from digitslite.errors import UserError

MAX_MEMBERS = 10_000
MAX_RATIO = 100  # unpacked bytes per archive byte; images barely compress, zip bombs a million-fold
RATIO_FLOOR = 1 << 20
MAX_NAME_BYTES = 255  # a file name on Linux file systems
MAX_PATH_BYTES = 1024  # a member's whole path: well inside PATH_MAX below a job folder
_CHUNK = 1 << 20
_ENCRYPTED = 0x1  # general purpose flag bit 0 of a zip member
_ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})
# What a damaged or lying archive raises while it is read (a full disk raises while writing instead).
_READ_ERRORS = (zipfile.BadZipFile, tarfile.TarError, OSError, RuntimeError, NotImplementedError, EOFError,
                zlib.error, lzma.LZMAError)

Source = BinaryIO | Path
Written = Callable[[int], None]  # told the bytes written so far, after every chunk; may raise to stop


class UnsafeArchiveError(UserError):
    retry_helps = False  # the same archive is refused again

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ArchiveListing:
    """What an archive holds, by path relative to its root, and the bytes it declares."""

    files: frozenset[PurePosixPath]
    folders: frozenset[PurePosixPath]
    declared_bytes: int

    def holds(self, relative: PurePosixPath, *, folder: bool) -> bool:
        """Whether the (normalised) path is a folder, or a file, of the archive; its root is a folder."""
        if folder:
            return relative == PurePosixPath() or relative in self.folders
        return relative in self.files


def folder_listing(root: Path) -> ArchiveListing:
    """An unpacked archive's listing (links are not followed: unpacking never makes one)."""
    files, folders, size = set(), set(), 0
    for directory, subdirs, names in os.walk(root):
        here = PurePosixPath(Path(directory).relative_to(root).as_posix())
        folders.update(here / name for name in subdirs)
        for name in names:
            files.add(here / name)
            size += (Path(directory) / name).stat().st_size
    return ArchiveListing(frozenset(files), frozenset(folders), size)


def _bytes(name: str) -> int:
    return len(name.encode("utf-8", "surrogatepass"))  # a tar's undecodable bytes are surrogates


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
    longest = max((_bytes(part) for part in parts), default=0)
    if longest > MAX_NAME_BYTES or _bytes(name) > MAX_PATH_BYTES:
        raise UnsafeArchiveError(f"{field}: member {name[:60]!r}... has a name longer than file systems "
                                 f"allow ({MAX_NAME_BYTES} bytes a part, {MAX_PATH_BYTES} in all); "
                                 "shorten it", field)
    return PurePosixPath(*parts) if parts else None


class _Budget:
    """What may be unpacked: the smaller of the size limit and `max_ratio` times the archive's own
    size (with a floor, so small archives of small files always fit). Declared sizes are checked
    before a member is read; written bytes are counted as they are written."""

    def __init__(self, max_bytes: int, archive_bytes: int, max_ratio: int, field: str):
        self.ratio_bytes = max(archive_bytes * max_ratio, RATIO_FLOOR)
        self.max_bytes = max_bytes
        self.max_ratio = max_ratio
        self.limit = min(max_bytes, self.ratio_bytes)
        self.declared = 0
        self.written = 0
        self.field = field

    def refusal(self) -> UnsafeArchiveError:
        if self.ratio_bytes < self.max_bytes:
            return UnsafeArchiveError(f"{self.field}: the archive unpacks to more than {self.max_ratio} "
                                      "times its own size (a zip bomb?); pack the files without such "
                                      "compression", self.field)
        limit_mib = self.max_bytes // (1024 * 1024)
        return UnsafeArchiveError(f"{self.field}: the archive unpacks to more than {limit_mib} MiB, more "
                                  "than this server accepts (DIGITSLITE_MAX_UNPACK_MB)", self.field)

    def declare(self, size: int) -> None:
        self.declared += size
        if self.declared > self.limit:
            raise self.refusal()

    def copy(self, source: BinaryIO, target: Path, name: str, written: Written | None) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as out:
            while chunk := _read(source, name, self.field):
                self.written += len(chunk)
                if self.written > self.limit:
                    raise self.refusal()
                out.write(chunk)
                if written is not None:
                    written(self.written)


def _read(source: BinaryIO, name: str, field: str) -> bytes:
    try:
        return source.read(_CHUNK)
    except _READ_ERRORS as exc:
        raise UnsafeArchiveError(f"{field}: member {name!r} cannot be read ({exc})", field) from None


def _member_path(name: str, field: str, odd_kind: str | None) -> PurePosixPath | None:
    """The member's safe path relative to the target (None for the archive root entry); a member of
    an odd kind (a link, a special file: `odd_kind` names it) is refused."""
    relative = _safe_relative(name, field)
    if odd_kind is not None:
        raise UnsafeArchiveError(f"{field}: member {name!r} is {odd_kind}; archives may hold only files "
                                 "and folders", field)
    return relative


@dataclass(frozen=True)
class _Member:
    name: str
    relative: PurePosixPath
    open: Callable[[], BinaryIO] | None  # None for a folder


def _refuse_count(max_members: int, field: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{field}: more than {max_members} files in the archive; send fewer "
                              "(DIGITSLITE_MAX_ARCHIVE_MEMBERS)", field)


def _zip_members(archive: zipfile.ZipFile, budget: _Budget, max_members: int,
                 field: str) -> Iterator[_Member]:
    """The member count and the declared total come from the central directory, before any member."""
    members = archive.infolist()
    if len(members) > max_members:
        raise _refuse_count(max_members, field)
    budget.declare(sum(member.file_size for member in members))
    for member in members:
        linked = stat.S_ISLNK(member.external_attr >> 16)
        relative = _member_path(member.filename, field, "a link" if linked else None)
        if relative is None:
            continue
        if member.is_dir():
            yield _Member(member.filename, relative, None)
            continue
        if member.flag_bits & _ENCRYPTED:
            raise UnsafeArchiveError(f"{field}: member {member.filename!r} is encrypted; send an archive "
                                     "without a password", field)
        if member.compress_type not in _ZIP_METHODS:
            raise UnsafeArchiveError(f"{field}: member {member.filename!r} uses compression method "
                                     f"{member.compress_type}, which this server cannot unpack; use "
                                     "deflate (the usual zip), bzip2 or lzma", field)
        yield _Member(member.filename, relative, lambda member=member: archive.open(member))


def _tar_members(archive: tarfile.TarFile, budget: _Budget, max_members: int,
                 field: str) -> Iterator[_Member]:
    """A tar has no directory: its headers are read (a compressed one decompressed) as it goes."""
    headers = iter(archive)
    for count in range(1, max_members + 2):
        try:
            member = next(headers)
        except StopIteration:
            return
        except _READ_ERRORS as exc:
            raise UnsafeArchiveError(f"{field}: not a readable tar archive ({exc})", field) from None
        if count > max_members:
            raise _refuse_count(max_members, field)
        odd = not (member.isfile() or member.isdir())
        relative = _member_path(member.name, field, "a link or special file" if odd else None)
        if relative is None:
            continue
        if member.isdir():
            yield _Member(member.name, relative, None)
            continue
        budget.declare(member.size)
        yield _Member(member.name, relative, lambda member=member: archive.extractfile(member))


class _Paths:
    """The paths the members take, so far. A path given twice, or a file where a folder must be, is
    refused: unpacking could not place both."""

    def __init__(self) -> None:
        self.files: set[PurePosixPath] = set()
        self.folders: set[PurePosixPath] = set()

    def placed(self, members: Iterator[_Member], field: str) -> Iterator[_Member]:
        for member in members:
            clash = member.relative in self.files or (
                member.open is not None and member.relative in self.folders)
            parent_file = next((parent for parent in member.relative.parents if parent in self.files), None)
            if clash or parent_file is not None:
                what = f"the file {str(parent_file)!r}" if parent_file is not None else "another member"
                raise UnsafeArchiveError(f"{field}: member {member.name!r} has the same path as {what}; "
                                         "pack each file once", field)
            (self.folders if member.open is None else self.files).add(member.relative)
            self.folders.update(member.relative.parents)
            yield member


def _size_of(source: Source) -> int:
    if isinstance(source, Path):
        return source.stat().st_size
    position = source.seek(0, 2)
    source.seek(0)
    return position


@contextmanager
def _members(source: Source, budget: _Budget, max_members: int, field: str,
             paths: _Paths) -> Iterator[Iterator[_Member]]:
    """The archive's checked members, a zip or a tar told apart by content, not by name."""
    if zipfile.is_zipfile(source):
        try:
            archive = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise UnsafeArchiveError(f"{field}: not a readable zip archive ({exc})", field) from None
        with archive:
            yield paths.placed(_zip_members(archive, budget, max_members, field), field)
        return
    if not isinstance(source, Path):
        source.seek(0)
    where = {"name": source} if isinstance(source, Path) else {"fileobj": source}
    try:
        tar = tarfile.open(mode="r:*", **where)  # noqa: SIM115 - closed by the `with` below
    except _READ_ERRORS:
        raise UnsafeArchiveError(f"{field}: the upload is neither a zip nor a tar archive", field) from None
    with tar:
        yield paths.placed(_tar_members(tar, budget, max_members, field), field)


def list_archive(source: Source, *, max_bytes: int, field: str, max_members: int = MAX_MEMBERS,
                 max_ratio: int = MAX_RATIO) -> ArchiveListing:
    """Check every member's name, kind and declared size against the limits, writing nothing.

    A zip is judged from its central directory alone; a compressed tar is read through once (its
    headers are spread over the stream), never further than the limits allow."""
    budget = _Budget(max_bytes, _size_of(source), max_ratio, field)
    paths = _Paths()
    with _members(source, budget, max_members, field, paths) as members:
        for _ in members:
            pass
    folders = frozenset(paths.folders - {PurePosixPath()})
    return ArchiveListing(frozenset(paths.files), folders, budget.declared)


def extract_archive(source: Source, target: Path, *, max_bytes: int, field: str,
                    max_members: int = MAX_MEMBERS, max_ratio: int = MAX_RATIO,
                    written: Written | None = None) -> None:
    """Unpack into `target` (which must exist) with the checks of list_archive, counting the bytes
    actually written against the limits (declared sizes can lie). The caller removes `target` when
    this raises: it may hold part of the archive."""
    budget = _Budget(max_bytes, _size_of(source), max_ratio, field)
    with _members(source, budget, max_members, field, _Paths()) as members:
        for member in members:
            path = target / member.relative
            if member.open is None:
                path.mkdir(parents=True, exist_ok=True)
            else:
                try:
                    data = member.open()
                except _READ_ERRORS as exc:
                    raise UnsafeArchiveError(f"{field}: member {member.name!r} cannot be read ({exc})",
                                             field) from None
                with data:
                    budget.copy(data, path, member.name, written)
            if written is not None:
                written(budget.written)
