"""`digitslite jobs`: list, show, abort and resume the jobs of a running server; reindex a jobs folder.

The server is $DIGITSLITE_SERVER (default http://127.0.0.1:5000) and, with users, the token is
$DIGITSLITE_TOKEN. `reindex` needs no server: it rebuilds the index from the job folders alone.
"""
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import click

from digitslite.cli._output import emit_json
from digitslite.errors import UserError
from digitslite.jobs.index import JobIndex
from digitslite.server.config import INDEX_FILE, ServerConfig

DEFAULT_SERVER = "http://127.0.0.1:5000"


@dataclass
class ApiClient:
    server: str
    token: str | None

    def call(self, method: str, path: str, **query: Any) -> Any:
        params = {key: value for key, value in query.items() if value is not None}
        url = f"{self.server.rstrip('/')}/api/v1{path}" + (f"?{urlencode(params)}" if params else "")
        request = urllib.request.Request(url, method=method)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = exc.reason
            raise UserError(f"{method} {path}: {exc.code} {message}") from None
        except urllib.error.URLError as exc:
            raise UserError(f"no digitslite server answers at {self.server} ({exc.reason}); start one with "
                            "`digitslite serve`, or give --server / $DIGITSLITE_SERVER") from None


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else "-"


def _line(job: dict[str, Any]) -> str:
    progress = f"{job['progress'] * 100:3.0f}%" if job["status"] in ("running", "starting") else ""
    return f"{job['id']}  {job['kind']:<10} {job['status']:<11} {progress:>4}  {_when(job['created'])}  " \
           f"{job['owner']:<8} {job['name']}"


@click.group()
@click.option("--server", envvar="DIGITSLITE_SERVER", default=DEFAULT_SERVER, show_default=True,
              help="The server's address [env DIGITSLITE_SERVER].")
@click.option("--token", envvar="DIGITSLITE_TOKEN", default=None,
              help="API token of a multi-user server [env DIGITSLITE_TOKEN].")
@click.pass_context
def command(ctx: click.Context, server: str, token: str | None) -> None:
    """Jobs of a running server (list, show, abort, resume) and `reindex` of a jobs folder."""
    ctx.obj = ApiClient(server, token)


@command.command("list")
@click.option("--kind", type=click.Choice(["dataset", "model", "inference", "pretrained"]))
@click.option("--status", type=click.Choice(["queued", "starting", "running", "done", "failed", "aborted",
                                             "interrupted"]))
@click.option("--owner")
@click.option("--text", help="Part of the id, name, group or notes.")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--per-page", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON.")
@click.pass_obj
def list_jobs(client: ApiClient, kind: str | None, status: str | None, owner: str | None, text: str | None,
              page: int, per_page: int, as_json: bool) -> None:
    """List jobs, newest first."""
    listing = client.call("GET", "/jobs", kind=kind, status=status, owner=owner, text=text, page=page,
                          per_page=per_page)
    if as_json:
        emit_json(listing)
        return
    for job in listing["jobs"]:
        click.echo(_line(job))
    click.echo(f"page {listing['page']} of {max(listing['pages'], 1)}, {listing['total']} job(s)", err=True)


@command.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON.")
@click.pass_obj
def show(client: ApiClient, job_id: str, as_json: bool) -> None:
    """Everything about one job."""
    job = client.call("GET", f"/jobs/{quote(job_id)}")
    if as_json:
        emit_json(job)
        return
    click.echo(_line(job))
    if job["message"]:
        click.echo(f"  {job['message']}")
    if job["error"]:
        click.echo(f"  error: {job['error']['message']}")
    if job["snapshots"]:
        click.echo(f"  snapshots: {', '.join(str(snap['iteration']) for snap in job['snapshots'])}")
    if job["dependents"]:
        click.echo(f"  used by: {', '.join(job['dependents'])}")


def _action(name: str, help_text: str) -> None:
    @command.command(name, help=help_text)
    @click.argument("job_id")
    @click.option("--json", "as_json", is_flag=True, help="Print the server's JSON.")
    @click.pass_obj
    def act(client: ApiClient, job_id: str, as_json: bool) -> None:
        job = client.call("POST", f"/jobs/{quote(job_id)}/{name}")
        if as_json:
            emit_json(job)
        else:
            click.echo(_line(job))


_action("abort", "Abort a job: a training snapshots and stops.")
_action("resume", "Queue an aborted, failed or interrupted job again (a training continues from its "
                  "snapshot).")


@command.command("reindex")
@click.option("--jobs-dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Jobs directory [default: $DIGITSLITE_JOBS_DIR or ./jobs].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def reindex(jobs_dir: Path | None, as_json: bool) -> None:
    """Rebuild the index from the job folders (no server needed; safe while one runs)."""
    folder = (jobs_dir or ServerConfig.from_env().jobs_dir).expanduser().resolve()
    index = JobIndex(folder / INDEX_FILE)
    unreadable = index.reconcile(folder, reread_all=True)
    counts = index.count_by_status()
    if as_json:
        emit_json({"jobs": sum(counts.values()), "by_status": counts, "unreadable": unreadable})
        return
    click.echo(f"indexed {sum(counts.values())} job(s) in {folder}")
    for name in unreadable:
        click.echo(f"unreadable job folder: {name} (job.json or state.json is missing or damaged)", err=True)
