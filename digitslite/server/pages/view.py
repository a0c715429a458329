"""What every page shares: the navigation's facts (who, GPUs free), display filters, job look-ups
that answer a browser with the 404 page, and a Content-Security-Policy that keeps every page on
this server (no page can make a request to any other host)."""
import datetime
import time
from typing import Any

from flask import Response, abort, g, request, url_for

from digitslite.jobs.folder import JobFolder
from digitslite.jobs.index import MAX_PAGE
from digitslite.jobs.model import RESUMABLE, TERMINAL, Status
from digitslite.server.pages.blueprint import pages
from digitslite.server.services import services
from digitslite.server.validators import parse_whole

# Plotly builds some of its drawing code at run time, hence 'unsafe-eval'; everything is 'self'.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' "
                           "'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; "
                           "frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
PAGE_OF_KIND = {"dataset": "pages.dataset", "model": "pages.model", "pretrained": "pages.pretrained",
                "inference": "pages.inference"}


def add_security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


pages.after_request(add_security_headers)


def gpu_badge() -> dict[str, int]:
    """Free and total GPUs of this server, as the navigation bar shows them."""
    svc = services()
    total = len(svc.config.gpus or [])
    busy = {gpu for gpus in svc.scheduler.running_gpus().values() for gpu in gpus}
    return {"free": total - len(busy), "total": total}


@pages.app_context_processor
def _navigation() -> dict[str, Any]:
    """`identity` is None on the login page of a multi-user server."""
    return {"identity": g.get("identity"), "multi_user": services().users.has_users(), "gpu_badge": gpu_badge}


@pages.app_template_global()
def status_groups() -> dict[str, str]:
    """The job model's status groups, space-separated, for the pages' scripts (which actions a status
    allows); a global, so that macros see it too."""
    return {"active": " ".join(status for status in Status if status not in TERMINAL),
            "resumable": " ".join(status for status in Status if status in RESUMABLE)}


def page_job(job_id: str, kind: str | None = None) -> tuple[dict[str, Any], JobFolder]:
    """The index row and folder of a job, or the 404 page."""
    row = services().index.get(job_id)
    if row is None or (kind is not None and row["kind"] != kind):
        abort(404, f"There is no {kind or 'job'} with the id {job_id}.")
    return row, services().scheduler.folder(job_id)


def whole_arg(name: str, default: int, choices: tuple[int, ...] | None = None) -> int:
    """A positive whole number from the query string; anything else falls back to `default`."""
    value = parse_whole(request.args.get(name, ""))
    value = value if value is not None and 0 < value <= MAX_PAGE else default
    return value if choices is None or value in choices else default


def eta_seconds(progress: float, started_at: float | None, now: float | None = None) -> float | None:
    """Time left if the run goes on at the pace it has had since it started; None when unknown."""
    if started_at is None or not 0.01 <= progress < 1.0:
        return None
    elapsed = (now or time.time()) - started_at
    return elapsed * (1.0 - progress) / progress


@pages.app_template_filter("when")
def when(timestamp: float | None) -> str:
    if not timestamp:
        return ""
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


@pages.app_template_filter("duration")
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@pages.app_template_filter("percent")
def percent(fraction: float | None, digits: int = 1) -> str:
    return "–" if fraction is None else f"{100 * fraction:.{digits}f} %"


@pages.app_template_filter("size")
def size(count: float | None) -> str:
    if count is None:
        return "–"
    if count < 1024:
        return f"{count:.0f} B"
    units = ("KiB", "MiB", "GiB")
    power = 1
    while power < len(units) and count >= 1024 ** (power + 1):
        power += 1
    return f"{count / 1024 ** power:.1f} {units[power - 1]}"


@pages.app_template_filter("rgb")
def rgb(colour: list[int] | tuple[int, ...]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour[:3])


@pages.app_template_global("url_with")
def url_with(**changes: Any) -> str:
    """This page's URL with some query arguments changed (None or "" removes one)."""
    args = {**request.args.to_dict(), **changes}
    return url_for(request.endpoint, **(request.view_args or {}),
                   **{key: value for key, value in args.items() if value not in (None, "")})
