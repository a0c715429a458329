"""The home page: jobs that are queued or running (progress, ETA), then one table per kind of job,
paginated, sorted and filtered by the server, with bulk abort and delete."""
import time
from dataclasses import dataclass
from typing import Any

from flask import redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from digitslite.jobs.index import MAX_PER_PAGE, SORT_COLUMNS, JobFilter
from digitslite.jobs.job import Status
from digitslite.jobs.kinds import KINDS
from digitslite.server.pages.blueprint import pages
from digitslite.server.pages.datasets import demo_folders
from digitslite.server.pages.model_table import DETAIL_SORTS, sorted_by_detail, with_details
from digitslite.server.pages.view import PAGE_OF_KIND, eta_seconds, page_job, whole_arg
from digitslite.server.services import services

TABS = {kind.tab: kind for kind in KINDS.values()}  # in the kinds' order
PER_PAGE_CHOICES = (25, 50, 100, 200)
ACTIVE = (Status.RUNNING, Status.STARTING, Status.QUEUED)


@dataclass(frozen=True)
class JobQuery:
    """One table's filters, order and page, as the request asked for them (the template shows them)."""

    kind: str
    status: str | None = None
    owner: str | None = None
    group: str | None = None
    text: str | None = None
    sort: str = "created"
    descending: bool = True
    page: int = 1
    per_page: int = 25

    def run(self) -> tuple[list[dict[str, Any]], int]:
        """One page of rows and the number of all matches; model rows carry their details."""
        where = JobFilter(kind=self.kind, status=self.status, owner=self.owner, group=self.group,
                          text=self.text)
        index = services().index
        if self.sort not in DETAIL_SORTS:
            rows, total = index.list(where, page=self.page, per_page=self.per_page, sort=self.sort,
                                     descending=self.descending)
            return (with_details(rows) if self.kind == "model" else rows), total
        everything, total, page = [], None, 1
        while total is None or len(everything) < total:
            rows, total = index.list(where, page=page, per_page=MAX_PER_PAGE)
            if not rows:
                break
            everything += rows
            page += 1
        ordered = sorted_by_detail(with_details(everything), self.sort, self.descending)
        first = (self.page - 1) * self.per_page
        return ordered[first:first + self.per_page], total


def table_query(args: MultiDict, kind: str) -> JobQuery:
    statuses = [str(status) for status in Status]
    sorts = (*SORT_COLUMNS, *(DETAIL_SORTS if kind == "model" else ()))
    sort = args.get("sort") if args.get("sort") in sorts else "created"
    return JobQuery(kind=kind, status=args.get("status") if args.get("status") in statuses else None,
                    owner=args.get("owner") or None, group=args.get("group") or None,
                    text=(args.get("q") or "").strip()[:200] or None, sort=sort,
                    descending=args.get("order", "desc") != "asc", page=whole_arg("page", 1),
                    per_page=whole_arg("per_page", PER_PAGE_CHOICES[0], PER_PAGE_CHOICES))


def active_jobs() -> list[dict[str, Any]]:
    """Queued and running jobs of every kind, running first, with the time each has left."""
    svc = services()
    now = time.time()
    jobs = []
    for status in ACTIVE:
        for job_id in svc.index.ids_with_status(status):
            row = svc.index.get(job_id)
            if row is None:
                continue
            try:
                started = svc.scheduler.folder(job_id).state().started_at
            except FileNotFoundError:  # deleted since the index was read
                continue
            jobs.append({**row, "eta": eta_seconds(row["progress"], started, now),
                         "elapsed": now - started if started else None})
    return jobs


@pages.get("/")
def home():
    index = services().index
    counts = index.count_by_kind()
    tab = request.args.get("tab")
    if tab not in TABS:
        tab = "models" if counts.get("model") else "datasets"
    query = table_query(request.args, TABS[tab].name)
    rows, total = query.run()
    pages_count = max(1, (total + query.per_page - 1) // query.per_page)
    return render_template("home/home.html", tab=tab, tabs=TABS, counts=counts, query=query, rows=rows,
                           total=total, pages_count=pages_count, active=active_jobs(),
                           groups=index.groups_of(TABS[tab].name), owners=index.owners_of(TABS[tab].name),
                           statuses=[str(status) for status in Status], per_page_choices=PER_PAGE_CHOICES,
                           page_of_kind=PAGE_OF_KIND, demo=None if counts else demo_folders(),
                           roots=[str(root) for root in services().config.data_roots])


@pages.get("/home/active")
def active_fragment():
    """The queued-and-running table alone, which the home page re-reads every few seconds."""
    return render_template("home/_active.html", active=active_jobs(), page_of_kind=PAGE_OF_KIND)


@pages.get("/jobs/<job_id>")
def job(job_id: str):
    """Any job's page, whatever its kind."""
    row, _ = page_job(job_id)
    return redirect(url_for(PAGE_OF_KIND[row["kind"]], job_id=job_id))
