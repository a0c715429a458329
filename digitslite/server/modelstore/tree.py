"""The store as a static tree, with byte ranges: /store/<path> of the job server (the embedded store),
and the whole of `digitslite store serve` (any store folder, at the root).

So the web server's own address is a model store: `digitslite store list http://HOST:PORT/store`,
another server's DIGITSLITE_STORE_URLS, or DIGITS itself reads it, and an interrupted download
resumes (single byte ranges, answered 206 with Content-Range; 416 past the end). Hidden files (a
publish or an import in progress) are never served, and no path leaves the folder.
"""
from pathlib import Path

from flask import Blueprint, Flask, current_app, send_from_directory

from digitslite.errors import UserError
from digitslite.modelstore.locations import embedded_store_dir
from digitslite.server.errors import ApiError, install_error_handlers

STORE_DIR = "DIGITSLITE_STORE_DIR"  # app config: the folder served; the embedded store when absent

store_tree = Blueprint("store_tree", __name__)


@store_tree.get("/<path:name>")
def store_file(name: str):
    if any(part.startswith(".") for part in name.split("/")):
        raise ApiError(404, f"the store has no file {name!r}")
    root = current_app.config.get(STORE_DIR) or embedded_store_dir()
    return send_from_directory(root, name, conditional=True)


def create_store_app(store_dir: Path) -> Flask:
    """`digitslite store serve`: an app that is this tree alone, for the folder `store_dir`."""
    if not store_dir.is_dir():
        raise UserError(f"{store_dir}: not a folder; give the store folder (the one holding master.json)")
    app = Flask(__name__)
    app.config[STORE_DIR] = store_dir.resolve()
    install_error_handlers(app)
    app.register_blueprint(store_tree)
    return app
