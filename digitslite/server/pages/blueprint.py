"""The `pages` blueprint (HTML, templates in digitslite/server/templates/) and, nested in it,
`pages_api` under /pages-api: small JSON and image helpers that only the pages call."""
from pathlib import Path

from flask import Blueprint

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"

pages = Blueprint("pages", __name__, template_folder=str(TEMPLATES_DIR))
pages_api = Blueprint("pages_api", __name__)
