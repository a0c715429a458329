"""The job page when replies and the event stream cross: an abort's reply that arrives after the
stream already reported the stop must not put the page back to "running".

It runs against a server of its own: the shared one's tests count on the jobs they made themselves."""
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.e2e.conftest import Site, check_watched, open_page
from tests.server.harness import created_id, dataset_request, make_demo, model_request, running_server


@pytest.fixture(scope="module")
def own_site(tmp_path_factory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("job-page")
    demo = make_demo(root / "data", count=4, val_count=2)
    with running_server(root / "jobs", [root / "data"]) as server:
        yield Site(server.url, server.client(), demo, root / "jobs")


@pytest.fixture
def own_page(browser: Browser, own_site: Site) -> Iterator[Page]:
    opened, watched = open_page(browser, own_site.url)
    yield opened
    check_watched(opened, watched)


def test_a_late_abort_reply_does_not_undo_the_stop_the_stream_showed(own_site: Site, own_page: Page):
    client, page = own_site.client, own_page
    dataset_id = created_id(client.post("/api/v1/datasets", dataset_request(own_site.demo, name="crossing")))
    client.wait_status(dataset_id, "done")
    model_id = created_id(client.post("/api/v1/models", model_request(
        dataset_id, name="crossing", max_iter=100_000, snapshot_interval=100_000)))
    client.wait_status(model_id, "running")

    running = client.job(model_id)  # what a reply taken just before the worker stopped says
    assert running["status"] == "running"
    held: list[Route] = []

    def hold_reply(route: Route) -> None:
        assert route.fetch().ok  # the abort itself happens now; its reply waits
        held.append(route)

    page.route(f"**/api/v1/jobs/{model_id}/abort", hold_reply)
    page.goto(f"/models/{model_id}")
    badge = page.locator("[data-status-badge]")
    expect(badge).to_have_text("running")
    page.get_by_role("button", name="Abort").click()
    expect(badge).to_have_text("aborted", timeout=60_000)  # from the stream, the reply still held

    head = page.locator("#job")
    expect(head).to_have_attribute("aria-busy", "true")  # the abort is still waiting for its reply
    held[0].fulfill(status=202, json=running)
    expect(head).not_to_have_attribute("aria-busy", "true")  # the page has handled the reply
    expect(badge).to_have_text("aborted")
    expect(page.locator("#job-error")).to_be_hidden()
    expect(page.get_by_role("button", name="Resume")).to_be_visible()
    expect(page.get_by_role("button", name="Abort")).to_be_hidden()
