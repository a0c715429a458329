"""Reading a model store: an http(s) URL or a local folder, with timeouts, retries and resumable
downloads, so that a bad network makes a clear error or a slow import, never a hang or a half file.

A store location is a string: "http://..." / "https://...", "file://...", or a folder path.
Downloads go to `<target>.part`; an interrupted transfer resumes from the bytes already there with
an HTTP Range request. A host that cannot be reached at all fails at once (no retries), with the
ways round it: a mirror in DIGITSLITE_STORE_URLS, or a local copy of the file.
"""
import errno
import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from digitslite.errors import UserError
from digitslite.store.locations import STORE_URLS_VARIABLE

Progress = Callable[[str, int, int | None], None]   # (file name, bytes so far, total bytes or None)

_CHUNK = 1 << 20
_LARGEST_INDEX_FILE = 4 << 20
_RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_USER_AGENT = "digitslite-store/1"
_LOCAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES})


class StoreUnreachable(UserError):  # noqa: N818 - reads as what happened
    """A store or file host that cannot be reached or does not answer."""


class StoreNotFound(UserError):  # noqa: N818
    """A file the store does not have."""


@dataclass(frozen=True)
class FetchPolicy:
    """How patient the client is: seconds per connect or read, and retries of a transfer that stalls
    after the host was reached (the pause before retry n is backoff * 2**n seconds)."""

    timeout: float = 15.0
    retries: int = 4
    backoff: float = 0.25
    # Hosts (host[:port]) a file's own "url" may name besides the store's host; None: any host (the
    # command line, on the user's own machine). A server sets it, so a store entry cannot make it
    # fetch from services it alone can reach.
    url_hosts: tuple[str, ...] | None = None


DEFAULT_POLICY = FetchPolicy()


def is_http(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def local_path(location: str) -> Path:
    """The folder or file a non-HTTP location names."""
    if location.startswith("file://"):
        return Path(urllib.request.url2pathname(urllib.parse.urlparse(location).path))
    return Path(location).expanduser()


def join(location: str, *names: str) -> str:
    """`names` (plain names) below a store location."""
    if is_http(location):
        return location.rstrip("/") + "".join("/" + urllib.parse.quote(name) for name in names)
    return str(local_path(location).joinpath(*names))


def unreachable_hint(file: str | None = None) -> str:
    """How to import without reaching the host: a copy of the store, or (for a file) a local copy."""
    if file is None:
        return (f"if this machine has no internet access, import from a copy of the store (a folder or a web "
                f"server you can reach, e.g. `digitslite store serve DIR`) and list it in "
                f"{STORE_URLS_VARIABLE}")
    return (f"if this machine has no internet access, put {file} beside info.json in a copy of the store (a "
            f"folder or a web server you can reach, listed in {STORE_URLS_VARIABLE}) and import from there, "
            "or give a copy you already have with --weights-file LOCAL (its checksum is still verified)")


class _Interrupted(Exception):  # noqa: N818 - internal signal
    """A transfer that broke off after the host was reached: worth retrying."""


class _NoAnswer(Exception):  # noqa: N818 - internal signal
    """The host did not answer at all: its name, the connection or the first response failed."""


class _Fatal(Exception):  # noqa: N818 - internal signal
    """An answer that retrying cannot change (404, 403, ...), carrying the error for the user."""

    def __init__(self, error: UserError):
        super().__init__(str(error))
        self.error = error


# ----------------------------------------------------------------------------------------------
# opening a location


_Opened = tuple[http.client.HTTPResponse, int, int | None]


def _open_http(url: str, offset: int, timeout: float) -> _Opened | None:
    """(response, the byte it starts at, total size or None); None when the server says a resumed
    file has nothing left to send (416: the .part is complete, which the checksum then confirms)."""
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    _resolve(url, timeout)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            return None
        if exc.code in _RETRIED_STATUSES:
            raise _Interrupted(f"HTTP {exc.code} {exc.reason}") from None
        if exc.code == 404:
            raise _Fatal(StoreNotFound(f"{url}: not found (HTTP 404); check the store URL and the model "
                                       "name (`digitslite store list URL` shows the names)")) from None
        raise _Fatal(StoreUnreachable(f"{url}: the server refused it (HTTP {exc.code} {exc.reason}); check "
                                      "the URL, or use a mirror")) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _NoAnswer(f"{reason}") from None
    length = response.headers.get("Content-Length")
    remaining = int(length) if length is not None and length.isdigit() else None
    if response.status == 206:
        start = _content_range_start(response.headers.get("Content-Range", ""))
        if start != offset:
            response.close()
            raise _Interrupted(f"the server answered the range request from byte {start}, not {offset}")
        return response, offset, None if remaining is None else offset + remaining
    return response, 0, remaining


def _resolve(url: str, timeout: float) -> None:
    """Look the host up within `timeout`: urllib's timeout does not cover name resolution, which on a
    machine without a reachable name server can block far longer. Skipped when a proxy resolves it."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if urllib.request.getproxies().get(parts.scheme) and not urllib.request.proxy_bypass(host):
        return
    outcome: list[OSError | None] = []

    def look_up() -> None:
        try:
            socket.getaddrinfo(host, parts.port or 80, type=socket.SOCK_STREAM)
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=look_up, name=f"resolve {host}", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise _NoAnswer(f"the name {host} did not resolve within {timeout:g} s")
    if outcome[0] is not None:
        raise _NoAnswer(f"{outcome[0]}")


def _content_range_start(header: str) -> int | None:
    """The first byte of `Content-Range: bytes a-b/total`."""
    unit, _, span = header.partition(" ")
    first = span.partition("-")[0]
    return int(first) if unit == "bytes" and first.isdigit() else None


def read_index_file(location: str, policy: FetchPolicy = DEFAULT_POLICY) -> Any:
    """A small JSON file (master.json, info.json) from a store, parsed."""
    if is_http(location):
        try:
            response, _, _ = _open_http(location, 0, policy.timeout)
            with response:
                data = response.read(_LARGEST_INDEX_FILE + 1)
        except _NoAnswer as exc:
            raise StoreUnreachable(f"cannot reach {location}: {exc}; check that the store is up, "
                                   f"or {unreachable_hint()}") from None
        except _Interrupted as exc:
            raise StoreUnreachable(f"{location}: {exc}; try again later") from None
        except _Fatal as exc:
            raise exc.error from None
        except (OSError, http.client.HTTPException) as exc:
            raise StoreUnreachable(f"{location}: the transfer broke off ({exc}); try again") from None
    else:
        path = local_path(location)
        try:
            with path.open("rb") as stream:
                data = stream.read(_LARGEST_INDEX_FILE + 1)
        except FileNotFoundError:
            raise StoreNotFound(f"{path}: no such file; check the store folder and the model name") from None
        except OSError as exc:
            raise StoreUnreachable(f"{path}: cannot read it ({exc.strerror}); check its permissions"
                                   ) from None
    if len(data) > _LARGEST_INDEX_FILE:
        raise UserError(f"{location}: larger than {_LARGEST_INDEX_FILE >> 20} MiB, so not a store index "
                        "file; check the store URL")
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{location}: not valid JSON ({exc}); the store's index file is damaged or the URL "
                        "is not a model store") from None


# ----------------------------------------------------------------------------------------------
# downloads


def download(location: str, target: Path, *, progress: Progress | None = None,
             policy: FetchPolicy = DEFAULT_POLICY) -> Path:
    """Copy `location` (URL or path) to `target`, through `<target>.part`, resuming what is there.

    Returns `target`. A transfer that breaks off is retried from where it stopped; a host that
    cannot be reached fails at once unless this call already received data from it.
    """
    partial = target.with_name(target.name + ".part")
    if not is_http(location):
        _copy_local(local_path(location), partial, target.name, progress)
        os.replace(partial, target)
        return target
    failures, reached = 0, False
    while True:
        before = partial.stat().st_size if partial.exists() else 0
        try:
            _transfer(location, partial, target.name, progress, policy.timeout)
            os.replace(partial, target)
            return target
        except _Fatal as exc:
            raise exc.error from None
        except (_NoAnswer, _Interrupted, OSError, http.client.HTTPException) as exc:
            if isinstance(exc, OSError) and exc.errno in _LOCAL_ERRNOS:
                raise UserError(f"cannot write {partial}: {exc.strerror}; free some space or choose another "
                                "destination folder") from None
            progressed = partial.exists() and partial.stat().st_size > before
            reached = reached or progressed or isinstance(exc, _Interrupted)
            if isinstance(exc, _NoAnswer) and not reached:
                raise StoreUnreachable(f"cannot download {location}: {exc}; "
                                       f"{unreachable_hint(target.name)}") from None
            failures = 0 if progressed else failures + 1
            if failures > policy.retries:
                raise StoreUnreachable(
                    f"downloading {location} failed {failures} times in a row ({exc}); the "
                    f"{partial.stat().st_size if partial.exists() else 0} bytes received are kept in "
                    f"{partial}, so running the import again resumes; or {unreachable_hint(target.name)}"
                ) from None
            time.sleep(policy.backoff * 2 ** failures)


def _transfer(url: str, partial: Path, name: str, progress: Progress | None, timeout: float) -> None:
    """One attempt: append to `partial` from where it ends; _Interrupted when it ends short."""
    offset = partial.stat().st_size if partial.exists() else 0
    opened = _open_http(url, offset, timeout)
    if opened is None:
        return
    response, start, total = opened
    with response, partial.open("r+b" if start else "wb") as out:
        out.seek(start)
        out.truncate()
        try:
            done = _copy_chunks(response, out, name, start, total, progress)
        except TimeoutError as exc:
            raise _Interrupted(f"no data for {timeout:g} s ({exc})") from None
    if total is not None and done < total:
        raise _Interrupted(f"the connection closed after {done} of {total} bytes")


def _copy_local(source: Path, partial: Path, name: str, progress: Progress | None) -> None:
    try:
        with source.open("rb") as stream, partial.open("wb") as out:
            _copy_chunks(stream, out, name, 0, os.fstat(stream.fileno()).st_size, progress)
    except FileNotFoundError:
        raise StoreNotFound(f"{source}: no such file; check the store folder or the local file given"
                            ) from None
    except OSError as exc:
        raise UserError(f"{source}: cannot copy it ({exc.strerror or exc}); check the path and the free "
                        "space") from None


def _copy_chunks(stream: BinaryIO, out: BinaryIO, name: str, done: int, total: int | None,
                 progress: Progress | None) -> int:
    """Copy to the end of `stream`, reporting progress; returns the byte count reached."""
    if progress is not None:
        progress(name, done, total)
    while chunk := stream.read(_CHUNK):
        out.write(chunk)
        done += len(chunk)
        if progress is not None:
            progress(name, done, total)
    return done
