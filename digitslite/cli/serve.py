"""`digitslite serve`: the job server and JSON API (default http://127.0.0.1:5000, jobs in ./jobs)."""
import logging
from pathlib import Path

import click

from digitslite.cli._server import address_options, listening
from digitslite.errors import UserError
from digitslite.server.config import DEFAULT_PORT, USERS_FILE, ServerConfig, is_loopback
from digitslite.server.users import UserStore


def _refuse_open_without_users(config: ServerConfig) -> None:
    """Anyone who can reach a non-loopback address could run code on this machine through the jobs."""
    if is_loopback(config.host) or config.insecure:
        return
    if not UserStore(config.jobs_dir.expanduser().resolve() / USERS_FILE).has_users():
        raise UserError(f"refusing to serve on {config.host} without users: anyone who can reach it could "
                        "use it; add one with `digitslite users add NAME`, serve on 127.0.0.1, or pass "
                        "--insecure")


@click.command()
@address_options(DEFAULT_PORT)
@click.option("--jobs-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Jobs directory [default: $DIGITSLITE_JOBS_DIR or ./jobs].")
@click.option("--data-root", "data_roots", type=click.Path(file_okay=False, path_type=Path), multiple=True,
              help="Folder whose files requests may name (repeatable) "
                   "[default: $DIGITSLITE_DATA_ROOTS or ./data].")
@click.option("--insecure", is_flag=True,
              help="Serve on a non-loopback address even without users (no login at all).")
@click.option("--quiet", is_flag=True, help="Do not log every request.")
def command(host: str, port: int, jobs_dir: Path | None, data_roots: tuple[Path, ...],
            insecure: bool, quiet: bool) -> None:
    """Run the job server: scheduler, workers and the JSON API under /api/v1."""
    from digitslite.server.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    config = ServerConfig.from_env(host=host, port=port, jobs_dir=jobs_dir, data_roots=data_roots or None,
                                   insecure=insecure or None)
    _refuse_open_without_users(config)
    app = create_app(config)
    services = app.extensions["digitslite"]
    with listening(config.host, config.port, app) as server:
        click.echo(f"digitslite: serving http://{config.host}:{server.port} (jobs in "
                   f"{services.config.jobs_dir})", err=True)
        try:
            server.serve_forever()
        finally:
            services.scheduler.stop()  # running workers go on; the next server re-attaches to them
            click.echo("digitslite: stopped; running jobs keep running", err=True)
