"""`digitslite users`: the accounts of a multi-user server (stored in the jobs directory).

With no user the server runs single-user on 127.0.0.1 only; the first `users add` makes it ask
for a login (pages) or an API token (`users token NAME`) on every request.
"""
import sys
from pathlib import Path

import click

from digitslite.cli._output import emit_json
from digitslite.server.config import USERS_FILE, ServerConfig
from digitslite.server.users import UserStore

jobs_dir_option = click.option("--jobs-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                               help="Jobs directory [default: $DIGITSLITE_JOBS_DIR or ./jobs].")


def _store(jobs_dir: Path | None) -> UserStore:
    folder = (jobs_dir or ServerConfig.from_env().jobs_dir).expanduser().resolve()
    return UserStore(folder / USERS_FILE)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@click.group()
def command() -> None:
    """Add, list and remove users; make and revoke their API tokens."""


@command.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="May abort, resume and delete every user's jobs.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@jobs_dir_option
def add(name: str, admin: bool, password_stdin: bool, jobs_dir: Path | None) -> None:
    """Add user NAME (asks for the password)."""
    _store(jobs_dir).add(name, _read_password(password_stdin), admin=admin)
    click.echo(f"added {'admin ' if admin else ''}user {name}", err=True)


@command.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@jobs_dir_option
def passwd(name: str, password_stdin: bool, jobs_dir: Path | None) -> None:
    """Set user NAME's password."""
    _store(jobs_dir).set_password(name, _read_password(password_stdin))
    click.echo(f"password of {name} changed", err=True)


@command.command("remove")
@click.argument("name")
@jobs_dir_option
def remove(name: str, jobs_dir: Path | None) -> None:
    """Remove user NAME (their jobs stay)."""
    _store(jobs_dir).remove(name)
    click.echo(f"removed user {name}", err=True)


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@jobs_dir_option
def list_users(as_json: bool, jobs_dir: Path | None) -> None:
    """List the users."""
    users = [{"name": user.name, "admin": user.admin, "tokens": len(user.tokens)}
             for user in _store(jobs_dir).users().values()]
    if as_json:
        emit_json(users)
        return
    for user in users:
        click.echo(f"{user['name']}\t{'admin' if user['admin'] else 'user'}\t{user['tokens']} token(s)")


@command.command("token")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@jobs_dir_option
def token(name: str, as_json: bool, jobs_dir: Path | None) -> None:
    """Make a new API token for NAME and print it (it is shown only this once)."""
    value = _store(jobs_dir).new_token(name)
    if as_json:
        emit_json({"user": name, "token": value})
    else:
        click.echo(value)


@command.command("revoke")
@click.argument("name")
@jobs_dir_option
def revoke(name: str, jobs_dir: Path | None) -> None:
    """Revoke every API token of NAME."""
    count = _store(jobs_dir).revoke_tokens(name)
    click.echo(f"revoked {count} token(s) of {name}", err=True)
