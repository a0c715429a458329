"""The Host check that defeats DNS rebinding: a page of another site whose name was made to resolve
to this machine sends its own name as Host, and is refused before anything else looks at it."""
import ipaddress

from flask import Flask, request

from digitslite.server.errors import error_response
from digitslite.server.services import services

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def host_name(header: str) -> str:
    """The name or address of a Host header, without its port or IPv6 brackets, lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def _is_wildcard(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return False


def host_allowed(header: str, listen_host: str, allowed: tuple[str, ...]) -> bool:
    """Whether a request with this Host header is meant for this server: the address it listens on,
    the loopback names when that is a loopback address, any name it listens on all addresses
    unless an allow-list is set, and the names of the allow-list."""
    name = host_name(header)
    if name in allowed:
        return True
    if _is_wildcard(listen_host):
        return not allowed
    listening = host_name(listen_host) if listen_host.startswith("[") else listen_host.lower()
    return name == listening or (listening in LOOPBACK_NAMES and name in LOOPBACK_NAMES)


def _check_host():
    config = services().config
    if host_allowed(request.host, config.host, config.allowed_hosts):
        return None
    return error_response(403, f"Host {request.host!r} is not a name this server answers to (it listens on "
                               f"{config.host}); add the name to DIGITSLITE_ALLOWED_HOSTS to allow it",
                          "Host")


def install_host_check(app: Flask) -> None:
    """Runs before every other check, so a rebinding page learns nothing and changes nothing."""
    app.before_request_funcs.setdefault(None, []).insert(0, _check_host)
