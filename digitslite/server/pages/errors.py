"""Error pages for browsers: a 403, 404 or 500 that says what happened and where to go next.

Requests under /api/ and /pages-api/, and clients that prefer JSON, keep the JSON errors of
digitslite.server.errors.
"""
import time

from flask import make_response, render_template, request
from werkzeug.exceptions import Forbidden, NotFound

from digitslite.server.errors import error_response, unexpected_error_response
from digitslite.server.pages.blueprint import pages
from digitslite.server.pages.view import add_security_headers

JSON_PREFIXES = ("/api/", "/pages-api/")


def wants_html() -> bool:
    if request.path.startswith(JSON_PREFIXES):
        return False
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) != "application/json"


def _page(status: int, message: str):
    page = render_template("errors/error.html", status=status, message=message, path=request.path,
                           at=time.time())
    return add_security_headers(make_response(page, status))


@pages.app_errorhandler(NotFound)
def not_found(exc: NotFound):
    if not wants_html():
        return error_response(404, exc.description or exc.name)
    described = exc.description if exc.description != NotFound.description else None
    return _page(404, described or "There is no page at this address.")


@pages.app_errorhandler(Forbidden)
def forbidden(exc: Forbidden):
    if not wants_html():
        return error_response(403, exc.description or exc.name)
    return _page(403, exc.description)


@pages.app_errorhandler(Exception)
def internal_error(exc: Exception):
    response = unexpected_error_response(exc)  # logs it
    if response[1] != 500 or not wants_html():  # a full disk's 507 says what to do
        return response
    return _page(500, "The server hit an error it did not expect.")
