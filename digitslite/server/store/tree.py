"""GET /store/<path>: the embedded model store as a static tree, with byte ranges.

So the web server's own address is a model store: `digitslite store list http://HOST:PORT/store`,
another server's DIGITSLITE_STORE_URLS, or DIGITS itself reads it, and an interrupted download
resumes. Hidden files (a publish or an import in progress) are never served.
"""
from flask import Blueprint, send_from_directory

from digitslite.server.errors import ApiError
from digitslite.store.locations import embedded_store_dir

store_tree = Blueprint("store_tree", __name__)


@store_tree.get("/store/<path:name>")
def store_file(name: str):
    if any(part.startswith(".") for part in name.split("/")):
        raise ApiError(404, f"the store has no file {name!r}")
    return send_from_directory(embedded_store_dir(), name, conditional=True)
