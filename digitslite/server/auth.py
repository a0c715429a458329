"""Who is asking: nobody to check in single-user mode, else a session (pages) or a bearer token (API).

Session requests that change something need the CSRF token of their session; every request that
changes something and comes from a page of another site (its Origin says so) is refused, in every
mode, because a browser would otherwise let any web page drive a server on localhost.
"""
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, g, redirect, request, session, url_for

from digitslite.server.errors import ApiError, error_response
from digitslite.server.services import services

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SESSION_ID = "sid"
# The embedded model store is public content that other servers and `digitslite store list` read
# without an account, like any static store.
PUBLIC_ENDPOINTS = frozenset({"pages.login", "openapi_api.openapi", "static", "store_tree.store_file"})


@dataclass(frozen=True)
class Identity:
    name: str
    admin: bool
    via: str  # "local" (single-user mode), "session" or "token"


LOCAL = Identity("local", True, "local")


def csrf_token() -> str:
    """This session's CSRF token, made on first use; pages put it in every form."""
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return session[CSRF_FIELD]


def check_csrf() -> None:
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD)
    expected = session.get(CSRF_FIELD)
    if not sent or not expected or not secrets.compare_digest(sent, expected):
        raise ApiError(403, f"missing or wrong CSRF token: send the page's token in the {CSRF_FIELD} form "
                            f"field or the {CSRF_HEADER} header (or use an API token instead of a session)")


def current_identity() -> Identity:
    return g.identity


def require_owner(owner: str, action: str) -> None:
    """Abort, delete and resume are for the job's owner and for admins."""
    identity = current_identity()
    if not (identity.admin or identity.name == owner):
        raise ApiError(403, f"only the job's owner ({owner}) or an admin may {action} it")


def _cross_site() -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return request.headers.get("Sec-Fetch-Site") == "cross-site"
    return origin == "null" or urlsplit(origin).netloc != request.host


def _is_api() -> bool:
    return request.path.startswith("/api/")


def _authenticate():
    if request.method not in SAFE_METHODS and _cross_site():
        return error_response(403, "cross-site request refused: this server accepts changes only from its "
                                   "own pages or from API clients")
    users = services().users
    if not users.has_users():
        g.identity = LOCAL
        return None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        user = users.user_for_token(header.removeprefix("Bearer ").strip())
        if user is None:
            return error_response(401, "the API token is not valid (revoked or mistyped); make a new one "
                                       "with `digitslite users token NAME`")
        g.identity = Identity(user.name, user.admin, "token")
        return None
    user = users.get(session.get("user", ""))
    if user is not None and not users.session_live(user, session.get(SESSION_ID, "")):
        session.clear()  # ended by a logout or a password change, though the cookie is still signed
        user = None
    if user is not None:
        g.identity = Identity(user.name, user.admin, "session")
        if request.method not in SAFE_METHODS and request.endpoint != "pages.login":
            check_csrf()
        return None
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if _is_api():
        response, status = error_response(401, "log in first: send 'Authorization: Bearer TOKEN' (make one "
                                               "with `digitslite users token NAME`) or use a session")
        response.headers["WWW-Authenticate"] = 'Bearer realm="digitslite"'
        return response, status
    return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))


def install_auth(app: Flask) -> None:
    app.before_request(_authenticate)
    app.jinja_env.globals["csrf_token"] = csrf_token


def login_session(name: str) -> None:
    """Start a fresh session for `name`: new CSRF token, nothing carried over from before login, and
    its id recorded on the server, which alone decides whether it is still live."""
    session.clear()
    session["user"] = name
    session[SESSION_ID] = services().users.start_session(name)
    session.permanent = True
    csrf_token()


def logout_session() -> None:
    """End the session on the server too, so a copy of its cookie is worth nothing."""
    name, session_id = session.get("user"), session.get(SESSION_ID)
    if name and session_id:
        services().users.end_session(name, session_id)
    session.clear()


def safe_next(target: str | None) -> str:
    """Where to go after login: only a path on this server, never another site. Browsers drop tabs
    and line breaks from URLs and read a backslash as a slash, so any such character refuses it."""
    if not target or any(ord(char) < 0x20 or char in "\\\x7f" for char in target):
        return url_for("pages.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.home")
    return target

