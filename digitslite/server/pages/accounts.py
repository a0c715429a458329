"""Login and logout, your account (API tokens, password) and, for admins, the users of the server.

In single-user mode (no users) nobody logs in: these pages say how to add users instead.
"""
import math

from flask import abort, redirect, render_template, request, url_for

from digitslite.errors import UserError
from digitslite.server.auth import check_csrf, current_identity, login_session, logout_session, safe_next
from digitslite.server.errors import ApiError
from digitslite.server.pages.blueprint import pages
from digitslite.server.services import services
from digitslite.server.users import MIN_PASSWORD_LENGTH


@pages.route("/login", methods=["GET", "POST"])
def login():
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("accounts/login.html", next=target, error=None)
    check_csrf()
    name = request.form.get("username", "")
    keys = (f"user:{name}", f"address:{request.remote_addr}")
    throttle = services().login_throttle
    wait = throttle.wait_s(*keys)
    if wait > 0:
        error = f"Too many wrong passwords; try again in {math.ceil(wait)} seconds."
        page = render_template("accounts/login.html", next=target, error=error)
        return page, 429, {"Retry-After": str(math.ceil(wait))}
    user = services().users.authenticate(name, request.form.get("password", ""))
    if user is None:
        throttle.failed(*keys)
        return render_template("accounts/login.html", next=target, error="Wrong user name or password."), 401
    throttle.succeeded(*keys)
    login_session(user.name)
    return redirect(target)


@pages.post("/logout")
def logout():
    if current_identity().via != "session":
        raise ApiError(400, "there is no session to log out of")
    logout_session()
    return redirect(url_for("pages.login"))


def _account_page(**shown):
    users = services().users
    user = users.get(current_identity().name)
    return render_template("accounts/account.html", user=user, min_password=MIN_PASSWORD_LENGTH, **shown)


@pages.get("/account")
def account():
    return _account_page()


@pages.post("/account/tokens")
def new_token():
    return _account_page(new_token=services().users.new_token(_session_user()))


@pages.post("/account/tokens/revoke")
def revoke_tokens():
    count = services().users.revoke_tokens(_session_user())
    return _account_page(notice=f"{count} token(s) revoked; clients that used them must log in again.")


@pages.post("/account/password")
def change_password():
    name = _session_user()
    users = services().users
    form = request.form
    if users.authenticate(name, form.get("current", "")) is None:
        return _account_page(error="The current password is wrong."), 422
    if form.get("password", "") != form.get("repeat", ""):
        return _account_page(error="The new password and its repetition differ."), 422
    try:
        users.set_password(name, form.get("password", ""))
    except UserError as exc:
        return _account_page(error=str(exc)), 422
    login_session(name)  # every other session of this user has just ended; this one goes on
    return _account_page(notice="Password changed; your other sessions are logged out.")


def _session_user() -> str:
    identity = current_identity()
    if identity.via != "session":
        abort(403, "This server has no users, so there is no account to change; add users with "
                   "`digitslite users add NAME`.")
    return identity.name


def _users_page(status: int = 200, **shown):
    users = sorted(services().users.users().values(), key=lambda user: user.name)
    return render_template("accounts/users.html", users=users, min_password=MIN_PASSWORD_LENGTH,
                           **shown), status


def _require_admin() -> None:
    """Users are managed by admins of a multi-user server; in single-user mode by the command line,
    since the first user added from a page would lock that very browser out."""
    if not services().users.has_users():
        abort(403, "This server has no users yet: add the first one with "
                   "`digitslite users add NAME --admin`.")
    if not current_identity().admin:
        abort(403, "Only an admin may manage the users of this server.")


@pages.get("/users")
def users_page():
    if services().users.has_users():
        _require_admin()
    return _users_page()


@pages.post("/users")
def add_user():
    _require_admin()
    form = request.form
    try:
        services().users.add(form.get("name", "").strip(), form.get("password", ""),
                             admin=form.get("admin") == "on")
    except UserError as exc:
        return _users_page(422, error=str(exc))
    return _users_page(notice=f"User {form.get('name', '').strip()} added.")


@pages.post("/users/<name>/remove")
def remove_user(name: str):
    _require_admin()
    if name == current_identity().name:
        return _users_page(422, error="You cannot remove yourself; ask another admin.")
    try:
        services().users.remove(name)
    except UserError as exc:
        return _users_page(422, error=str(exc))
    return _users_page(notice=f"User {name} removed.")
