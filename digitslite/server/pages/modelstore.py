"""The model store page: every store this server knows (the embedded one and DIGITSLITE_STORE_URLS),
unreachable ones shown as such, each entry with an Import button. The page fetches the listing from
GET /api/v1/store/models, so a slow store never holds the page back."""
from flask import render_template

from digitslite.server.pages.blueprint import pages


@pages.get("/store")
def store():
    return render_template("store/store.html")
