"""Front-end files that come from installed packages rather than from static/: plotly.js, served
from the `plotly` Python package (never from a CDN)."""
import importlib.util
from pathlib import Path

from flask import abort, send_file

from digitslite.server.pages.blueprint import pages

ONE_DAY_S = 86_400


def plotly_bundle() -> Path | None:
    """plotly.min.js as the plotly package ships it; found without importing the package."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


@pages.get("/assets/plotly.min.js")
def plotly_js():
    bundle = plotly_bundle()
    if bundle is None:
        abort(404, "plotly.min.js is not installed: pip install plotly (the charts need it).")
    return send_file(bundle, mimetype="text/javascript", max_age=ONE_DAY_S)
