"""Items 10 and 11: sessions end on the server at logout and password change, wrong passwords back
off, and the page after login is never another site."""
import re

import pytest

from digitslite.server.throttle import FREE_TRIES, LoginThrottle
from digitslite.server.users import UserStore

PASSWORD = "correct horse battery"


@pytest.fixture
def users(app, tmp_path):
    store = UserStore(tmp_path / "jobs" / "users.json")
    store.add("alice", PASSWORD, admin=True)
    return store


def _csrf(client, path="/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _login(client, password=PASSWORD, next_path=None):
    form = {"username": "alice", "password": password, "csrf_token": _csrf(client)}
    if next_path is not None:
        form["next"] = next_path
    return client.post("/login", data=form)


def test_a_session_cookie_is_worthless_after_logout(app, users):
    client = app.test_client()
    assert _login(client).status_code == 302
    cookie = client.get_cookie("digitslite_session").value
    assert client.get("/api/v1/jobs").status_code == 200
    token = _csrf(client, "/account")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    replay = app.test_client()
    replay.set_cookie("digitslite_session", cookie)
    assert replay.get("/api/v1/jobs").status_code == 401


def test_a_password_change_ends_other_sessions(app, users):
    other = app.test_client()
    assert _login(other).status_code == 302
    users.set_password("alice", "another long password")
    assert other.get("/api/v1/jobs").status_code == 401


def test_wrong_passwords_back_off_even_for_the_right_one(app, users):
    client = app.test_client()
    for _ in range(FREE_TRIES):
        assert _login(client, password="wrong password").status_code == 401
    refused = _login(client)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "Too many wrong passwords" in refused.get_data(as_text=True)


def test_the_back_off_doubles_and_a_success_clears_it():
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for _ in range(FREE_TRIES):
        throttle.failed("user:a", "address:x")
    assert throttle.wait_s("user:a", "address:y") == 1.0
    throttle.failed("user:a")
    assert throttle.wait_s("user:a") == 2.0 and throttle.wait_s("user:b", "address:x") == 1.0
    now[0] = 2.0
    assert throttle.wait_s("user:a") == 0.0
    throttle.succeeded("user:a", "address:x")
    assert throttle.wait_s("user:a", "address:x") == 0.0


@pytest.mark.parametrize("target", ["/\t/evil.example/", "//evil.example/", "/\\evil.example",
                                    "\\\\evil.example", "https://evil.example/", "/\n/evil.example",
                                    "javascript:alert(1)"])
def test_the_page_after_login_is_never_another_site(app, users, target):
    response = _login(app.test_client(), next_path=target)
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_a_local_page_after_login_is_kept(app, users):
    response = _login(app.test_client(), next_path="/models/new?x=1")
    assert response.headers["Location"] == "/models/new?x=1"
