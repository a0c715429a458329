"""A server with users: every page asks for a login; the account page makes API tokens; an admin
adds and removes users; logging out ends the session."""
import subprocess
import sys

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import check_watched, open_page
from tests.server.harness import running_server

PASSWORD = "correct horse battery"
INPUT_ONLY = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 } } }'


def _users(jobs_dir, *args: str) -> None:
    command = [sys.executable, "-m", "digitslite", "users", *args, "--jobs-dir", str(jobs_dir),
               "--password-stdin"]
    done = subprocess.run(command, input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    root = tmp_path_factory.mktemp("accounts")
    _users(root / "jobs", "add", "alice", "--admin")
    (root / "data").mkdir()
    with running_server(root / "jobs", [root / "data"]) as server:
        yield server


@pytest.fixture
def guarded_page(browser, guarded):
    opened, watched = open_page(browser, guarded.url)
    yield opened
    check_watched(opened, watched)


def test_login_tokens_users_and_logout(guarded, guarded_page: Page, shots):
    page = guarded_page
    page.goto("/models/new")
    expect(page).to_have_url(f"{guarded.url}/login?next=/models/new")
    page.get_by_label("User").fill("alice")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    shots(page, "login")
    page.get_by_label("User").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{guarded.url}/models/new")
    expect(page.get_by_role("link", name="alice")).to_be_visible()
    page.get_by_text("Custom prototxt", exact=True).click()  # the live check posts with the CSRF token
    page.get_by_label("Network prototxt").fill(INPUT_ONLY)
    expect(page.locator("#check-status")).to_contain_text("✓ 1 layers in the training net, 1 blobs")

    page.get_by_role("link", name="alice").click()
    page.get_by_role("button", name="Make a token").click()
    token = page.locator("#new-token").inner_text()
    assert token.startswith("dlt_")
    assert guarded.client(token=token).get("/api/v1/jobs").status == 200
    expect(page.locator("table")).to_contain_text("20")  # the token's row and when it was made
    shots(page, "account")

    page.get_by_role("link", name="Users").click()
    page.get_by_label("Name").fill("bob")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("status")).to_have_text("User bob added.")
    expect(page.get_by_role("row", name="bob user 0")).to_be_visible()
    shots(page, "users")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("row", name="bob").get_by_role("button", name="Remove").click()
    expect(page.get_by_role("status")).to_have_text("User bob removed.")
    expect(page.get_by_role("row", name="bob")).to_have_count(0)

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{guarded.url}/login")
    page.goto("/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
