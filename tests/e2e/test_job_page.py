"""The job page when replies and the event stream cross: an abort's reply that arrives after the
stream already reported the stop must not put the page back to "running". And the model form's
data-parallel fields, refused and accepted.

These run against a server of their own: the shared one's tests count on the jobs they made."""
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.e2e.conftest import Site, check_watched, open_page
from tests.server.harness import (
    created_id,
    dataset_request,
    make_demo,
    model_request,
    running_server,
    wait_for,
)


@pytest.fixture(scope="module")
def own_site(tmp_path_factory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("job-page")
    demo = make_demo(root / "data", count=4, val_count=2)
    with running_server(root / "jobs", [root / "data"]) as server:
        yield Site(server.url, server.client(), demo, root / "jobs")


@pytest.fixture(scope="module")
def dataset_id(own_site: Site) -> str:
    created = created_id(own_site.client.post("/api/v1/datasets", dataset_request(own_site.demo, name="own")))
    assert own_site.client.wait_status(created)["status"] == "done"
    return created


@pytest.fixture
def own_page(browser: Browser, own_site: Site) -> Iterator[Page]:
    opened, watched = open_page(browser, own_site.url)
    yield opened
    check_watched(opened, watched)


def test_a_late_abort_reply_does_not_undo_the_stop_the_stream_showed(own_site: Site, own_page: Page,
                                                                    dataset_id: str):
    client, page = own_site.client, own_page
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
    page.once("dialog", lambda dialog: dialog.accept())  # Abort asks first
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


def test_the_model_form_sends_the_data_parallel_fields_and_shows_their_refusals(
        own_site: Site, own_page: Page, dataset_id: str):
    client, page = own_site.client, own_page
    page.goto(f"/models/new?dataset={dataset_id}")
    page.wait_for_load_state()
    section = page.locator("details.scale-out")
    page.get_by_label("Name", exact=True).fill("two ranks")
    page.get_by_label("training length").fill("100000")
    page.get_by_label("unit").select_option("max_iter")
    section.locator("summary").click()
    section.get_by_label("Nodes").fill("2")
    section.locator("summary").click()  # folded again: the refusal must unfold it
    page.get_by_role("button", name="Create model").click()
    refusal = page.locator('[data-error-for="master"]')
    expect(refusal).to_contain_text("with several nodes, give node 0's address")
    expect(refusal).to_be_visible()
    expect(section.get_by_label("Node 0 at")).to_have_attribute("aria-invalid", "true")

    section.get_by_label("Nodes").fill("")
    section.get_by_label("CPU ranks").fill("2")
    page.get_by_role("button", name="Create model").click()
    expect(page).to_have_url(re.compile(r"/models/\d{8}-\d{6}-[0-9a-f]{6}$"))
    model_id = page.url.rsplit("/", 1)[1]
    job = client.job(model_id)
    assert job["params"]["scale_out"] == {"ranks": 2, "nnodes": 1, "node_rank": 0, "master": None,
                                          "sync_batchnorm": False, "recompute": None}
    assert client.post(f"/api/v1/jobs/{model_id}/abort").status == 202
    assert client.wait_status(model_id)["status"] == "aborted"


def test_an_open_page_of_a_stopped_model_follows_it_when_it_is_resumed_elsewhere(
        own_site: Site, own_page: Page, dataset_id: str):
    client, page = own_site.client, own_page
    model_id = created_id(client.post("/api/v1/models", model_request(
        dataset_id, name="resumed elsewhere", max_iter=100_000, snapshot_interval=5, display=1)))
    client.wait_status(model_id, "running")
    wait_for(lambda: client.job(model_id)["snapshots"], 60, "a first snapshot")
    assert client.post(f"/api/v1/jobs/{model_id}/abort").status == 202
    assert client.wait_status(model_id)["status"] == "aborted"

    page.goto(f"/models/{model_id}")
    badge = page.locator("[data-status-badge]")
    expect(badge).to_have_text("aborted")
    shown = page.evaluate("document.getElementById('chart-loss').data?.[0].x.length ?? 0")
    assert client.post(f"/api/v1/jobs/{model_id}/resume").status == 202  # as from another tab
    expect(badge).to_have_text(re.compile("queued|starting|running"))
    page.wait_for_function("(document.getElementById('chart-loss').data?.[0].x.length ?? 0) > "
                           f"{shown}")
    expect(page.get_by_role("button", name="Abort")).to_be_visible()
    assert client.post(f"/api/v1/jobs/{model_id}/abort").status == 202
    expect(badge).to_have_text("aborted")
