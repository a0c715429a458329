"""The web pages a researcher uses all day: one module per page family, server-rendered with Jinja.

Importing the modules attaches their routes to `pages` (and to `pages_api`, nested under
/pages-api); the app registers `pages` alone. Each job kind's record names the module of its page,
and each task's record the module of its own parts of the pages (digitslite.tasks).
"""
from digitslite.jobs.kinds import KINDS, load
from digitslite.server.pages import (  # noqa: F401 - imported for the routes they attach
    accounts,
    assets,
    errors,
    home,
    model_helpers,
    modelstore,
)
from digitslite.server.pages.blueprint import pages, pages_api
from digitslite.tasks import TASKS

for _kind in KINDS.values():
    load(_kind.page_module)
for _task in TASKS.values():
    _task.part("pages")

pages.register_blueprint(pages_api, url_prefix="/pages-api")

__all__ = ["pages"]
