"""`digitslite store serve`: a static file server for a store folder, with byte ranges.

Any static server can serve a store; this one adds single byte-range requests (`Range: bytes=a-b`,
`a-`, `-n`, answered 206 with Content-Range), so an interrupted import resumes instead of starting
over. Paths cannot leave the folder (the standard handler drops `..`).
"""
import functools
import os
import re
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

from digitslite.errors import UserError

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _Slice:
    """The bytes [start, start + length) of an open file, read like a file."""

    def __init__(self, stream: BinaryIO, start: int, length: int) -> None:
        stream.seek(start)
        self.stream, self.left = stream, length

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self.stream.read(size)
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.stream.close()


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single-range header for a file of `size` bytes; None if unsatisfiable.
    A header this server does not understand (several ranges) means the whole file."""
    match = _RANGE.match(header.strip())
    if not match or not (match[1] or match[2]):
        return 0, size - 1
    if not match[1]:
        suffix = int(match[2])
        return (max(size - suffix, 0), size - 1) if suffix and size else None
    first = int(match[1])
    last = min(int(match[2]), size - 1) if match[2] else size - 1
    return (first, last) if first <= last else None


class StoreRequestHandler(SimpleHTTPRequestHandler):
    """Static files of the store folder, with Range support; quiet unless `verbose`."""

    verbose = False

    def send_head(self):
        header = self.headers.get("Range")
        path = self.translate_path(self.path)
        if header is None or not os.path.isfile(path):
            return super().send_head()
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed by the handler after copying
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        size = os.fstat(stream.fileno()).st_size
        span = byte_range(header, size)
        if span is None:
            stream.close()
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        first, last = span
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return _Slice(stream, first, last - first + 1)

    def log_message(self, format: str, *args) -> None:
        if self.verbose:
            super().log_message(format, *args)


def make_store_server(root: str | os.PathLike, host: str = "127.0.0.1", port: int = 0,
                      verbose: bool = False) -> ThreadingHTTPServer:
    """A server for the store folder `root`, bound (port 0 picks a free one) but not yet serving."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder; give the store folder (the one holding master.json)")
    handler = functools.partial(type("Handler", (StoreRequestHandler,), {"verbose": verbose}),
                                directory=str(root))
    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port or --host"
                        ) from None
