"""The forms beyond the main story: a dataset from an uploaded zip, a learning-rate sweep that makes
one job per rate, aborting from the running-jobs table and in bulk, and a clone's pre-filled form."""
import re
import zipfile

from playwright.sync_api import Page, expect

from tests.server.harness import wait_for


def test_zip_upload_sweep_bulk_abort_and_clone(site, page: Page, tmp_path, shots):
    archive = tmp_path / "scenes.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for folder in ("images", "labels", "val_images", "val_labels"):
            for path in sorted((site.demo / folder).iterdir()):
                zipped.write(path, f"{folder}/{path.name}")
        zipped.write(site.demo / "classes.txt", "classes.txt")
    page.goto("/datasets/new")
    page.wait_for_load_state()
    page.get_by_text("Upload a zip", exact=True).click()
    expect(page.get_by_role("button", name="Check")).to_be_hidden()
    page.get_by_label("Archive").set_input_files(archive)
    page.get_by_label("Name", exact=True).fill("zipped scenes")
    page.get_by_role("button", name="Create dataset").click()
    expect(page.locator("[data-status-badge]")).to_have_text("done", timeout=60_000)
    expect(page.locator("table.classes")).to_contain_text("pedestrian")

    with page.expect_navigation():
        page.get_by_role("link", name="New model on it").click()
    page.get_by_role("textbox", name="Learning rate").fill("0.002, 0.0005")
    page.get_by_label("training length").fill("5000")
    page.get_by_label("unit").select_option("max_iter")
    page.get_by_label("Name", exact=True).fill("rates")
    expect(page.locator("#sweep")).to_have_text(re.compile("sweep of 2 jobs"))
    expect(page.locator("#lr-chart .legend")).to_contain_text("base_lr 0.0005")
    page.get_by_role("button", name="Create model").click()
    expect(page).to_have_url(re.compile(r"/\?tab=models&group=rates$"))
    rows = page.locator("#jobs-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("rates [base_lr=")

    active = page.locator("#active tbody tr")
    expect(active).to_have_count(2)
    page.once("dialog", lambda dialog: dialog.accept())  # Abort asks first
    active.first.get_by_role("button", name="Abort").click()
    expect(active).to_have_count(1, timeout=60_000)  # the table refreshes itself as the worker stops
    shots(page, "sweep")
    page.get_by_label("Select all on this page").check()
    page.once("dialog", lambda dialog: dialog.accept())  # Abort asks first
    page.get_by_role("button", name="Abort selected").click()
    wait_for(lambda: all(job["status"] in ("aborted", "done") for job in
                         site.client.get("/api/v1/jobs", text="rates").json()["jobs"]),
             timeout=60, what="the sweep to stop")
    page.reload()
    expect(page.locator("#jobs-table .status-aborted")).to_have_count(2)
    expect(page.get_by_text("Nothing is queued or running.")).to_be_visible()

    with page.expect_navigation():
        rows.first.get_by_role("link").first.click()
    with page.expect_navigation():
        page.get_by_role("link", name="Clone").click()
    clone_name = re.compile(r"^rates \[base_lr=.*\] \(clone\)$")
    expect(page.get_by_label("Name", exact=True)).to_have_value(clone_name)
    expect(page.get_by_role("textbox", name="Learning rate")).to_have_value(re.compile(r"^0\.\d+$"))
    expect(page.get_by_label("Group", exact=True)).to_have_value("rates")
