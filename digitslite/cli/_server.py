"""What the two listening commands (`serve` and `store serve`) share: the --host and --port options
and a threaded HTTP server that SIGTERM and Ctrl-C stop cleanly."""
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from digitslite.errors import UserError
from digitslite.server.config import DEFAULT_HOST

if TYPE_CHECKING:  # werkzeug loads when a command runs, never for --help
    from werkzeug.serving import BaseWSGIServer


def address_options(default_port: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--host and --port (0 picks a free port)."""
    host = click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
    port = click.option("--port", type=int, default=default_port, show_default=True,
                        help="Port (0 picks a free one).")
    return lambda command: host(port(command))


@contextmanager
def listening(host: str, port: int, app: Callable) -> Iterator["BaseWSGIServer"]:
    """A threaded server of `app` on host:port whose serve_forever() returns on SIGTERM or Ctrl-C."""
    from werkzeug.serving import make_server

    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port or --host"
                        ) from None

    def shut_down(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, shut_down) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield server
    finally:
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
