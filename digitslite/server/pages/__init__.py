"""The web pages a researcher uses all day: one module per page family, server-rendered with Jinja.

Importing the modules attaches their routes to `pages` (and to `pages_api`, nested under
/pages-api); the app registers `pages` alone.
"""
from digitslite.server.pages import (  # noqa: F401 - imported for the routes they attach
    accounts,
    assets,
    datasets,
    errors,
    home,
    inference,
    model_helpers,
    models,
    store,
)
from digitslite.server.pages.blueprint import pages, pages_api

pages.register_blueprint(pages_api, url_prefix="/pages-api")

__all__ = ["pages"]
