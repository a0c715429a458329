"""The whole story as a new user lives it, in Chromium against a real server: the demo folders become a
dataset through the form (after its check report), a standard network trains while its chart grows
over Server-Sent Events, is aborted and resumed, and its snapshot runs on an uploaded image and on
validation images, seen as overlays with an opacity slider and a legend. Then the jobs table."""
import re

from playwright.sync_api import Page, expect

from tests.e2e.steps import JOB_URL, fill_training, follow

TRAINING_S = 120_000  # ms: generous bounds for a loaded CI machine; the steps take seconds


def _chart_points(page: Page) -> int:
    return page.evaluate("document.getElementById('chart-loss').data?.[0].x.length ?? 0")


def _wait_for_more_points(page: Page, than: int) -> None:
    page.wait_for_function(f"(document.getElementById('chart-loss').data?.[0].x.length ?? 0) > {than}",
                           timeout=TRAINING_S)


def _pixel(page: Page, selector: str, x: int, y: int) -> list[int]:
    return page.evaluate(f"Array.from(document.querySelector('{selector}').getContext('2d')"
                         f".getImageData({x}, {y}, 1, 1).data)")


def _create_dataset(page: Page, site, shots) -> str:
    demo = site.demo
    page.goto("/")
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    shots(page, "home-empty")
    follow(page, page.get_by_role("link", name="New dataset").first)
    images = page.get_by_label("Images folder")
    images.fill(f"{demo}/")
    expect(page.locator(f'datalist option[value="{demo}/images/"]')).to_have_count(1)  # path completion
    images.fill(str(demo / "images"))
    page.get_by_label("Labels folder").fill(str(demo / "labels"))
    page.get_by_label("Separate validation folders").check()
    page.get_by_label("Validation images").fill(str(demo / "val_images"))
    page.get_by_label("Validation labels").fill(str(demo / "val_labels"))
    page.get_by_label("Class names file").fill(str(demo / "classes.txt"))
    page.get_by_label("Name", exact=True).fill("demo scenes")
    jobs = site.job_count()   # other tests on this worker's site may have made jobs before
    page.get_by_role("button", name="Check").click()
    expect(page.locator("#report-verdict")).to_have_text(
        "Ready: 8 training and 4 validation pairs, 10 classes, no problems.")
    expect(page.locator("#report-previews figure")).to_have_count(4)
    expect(page.locator("#report-previews figure").first).to_contain_text("sky")
    expect(page.locator("#report-classes .bar-row")).to_have_count(10)
    expect(page.locator("#report-classes")).to_contain_text("7 pedestrian")
    assert site.job_count() == jobs  # the check created nothing
    shots(page, "dataset-check")

    page.get_by_role("button", name="Create dataset").click()
    expect(page).to_have_url(re.compile(JOB_URL.format("datasets")))
    expect(page.locator("[data-status-badge]")).to_have_text("done", timeout=TRAINING_S)
    expect(page.locator("table.classes tbody tr")).to_have_count(10)
    expect(page.locator("table.classes")).to_contain_text("pedestrian")
    page.locator("#explore").scroll_into_view_if_needed()
    expect(page.locator(".gallery .record")).to_have_count(8)
    page.wait_for_function("[...document.querySelectorAll('.gallery img')].every(img => img.naturalWidth)")
    expect(page.locator(".log")).to_contain_text("train 8, val 4")
    shots(page, "dataset")
    return page.url.rsplit("/", 1)[1]


def _train_abort_resume(page: Page, site, dataset_id: str, shots) -> None:
    follow(page, page.get_by_role("link", name="New model on it"))
    expect(page.get_by_label("Train on")).to_have_value(dataset_id)
    expect(page.get_by_role("radio", name=re.compile("fcn_tiny"))).to_be_checked()
    fill_training(page, iterations=5000, batch=2, test_every=20, snapshot_every=20, log_every=5, name="tiny")
    expect(page.locator("#lr-caption")).to_have_text("Learning rate over 5000 iterations.")
    shots(page, "new-model")
    page.get_by_role("button", name="Create model").click()
    expect(page).to_have_url(re.compile(JOB_URL.format("models")))

    badge = page.locator("[data-status-badge]")
    _wait_for_more_points(page, 2)
    _wait_for_more_points(page, _chart_points(page))  # the chart grows as the records stream in
    expect(page.locator("#stat-iteration")).to_have_text(re.compile(r"^\d+$"))
    expect(page.locator("#per-class-table")).to_contain_text("pedestrian", timeout=TRAINING_S)
    expect(page.locator("#per-class-table tbody tr")).to_have_count(10)
    expect(page.locator("[data-message]")).to_contain_text(re.compile(r"iteration \d+/5000"))
    shots(page, "model-running")

    page.once("dialog", lambda dialog: dialog.accept())  # Abort asks first
    page.get_by_role("button", name="Abort").click()
    expect(badge).to_have_text("aborted", timeout=TRAINING_S)
    expect(page.locator("#snapshots")).to_contain_text("Download")
    stopped = _chart_points(page)
    page.get_by_role("button", name="Resume").click()
    expect(badge).to_have_text(re.compile("queued|starting|running"))
    _wait_for_more_points(page, stopped)
    expect(page.locator(".log")).to_contain_text("resuming from snapshot_iter_", timeout=TRAINING_S)
    page.once("dialog", lambda dialog: dialog.accept())  # Abort asks first
    page.get_by_role("button", name="Abort").click()
    expect(badge).to_have_text("aborted", timeout=TRAINING_S)
    page.get_by_label("log scale").first.check()
    expect(page.locator("#chart-loss .xy .ytick").first).to_be_visible()
    shots(page, "model-aborted")

    publish = page.locator("#publish-form")
    publish.get_by_label("Store folder").fill(str(site.demo.parent / "my_store"))
    publish.get_by_label("Entry name").fill("tiny-demo")
    publish.get_by_role("button", name="Publish").click()
    expect(page.locator("#publish-done")).to_contain_text("Published as tiny-demo")
    assert (site.demo.parent / "my_store" / "tiny-demo" / "info.json").is_file()


def _infer_upload(page: Page, site, shots) -> None:
    follow(page, page.locator(".job-actions").get_by_role("link", name="Infer"))
    image = sorted((site.demo / "val_images").iterdir())[0]
    page.get_by_label("Images", exact=True).set_input_files(image)
    shots(page, "infer-form")
    page.get_by_role("button", name="Run inference").click()
    expect(page).to_have_url(re.compile(JOB_URL.format("inference")))
    expect(page.locator("canvas.overlay[data-ready]")).to_have_count(1, timeout=TRAINING_S)
    expect(page.locator("#legend li")).to_have_count(10)
    expect(page.locator("#legend")).to_contain_text("pedestrian")
    expect(page.locator("article.result img.input")).to_have_js_property("naturalWidth", 64)

    canvas = "canvas.overlay"
    half = _pixel(page, canvas, 32, 10)
    page.get_by_label("Opacity").fill("90")
    expect(page.locator("#opacity-value")).to_have_text("90 %")
    page.wait_for_function(f"Array.from(document.querySelector('{canvas}').getContext('2d')"
                           f".getImageData(32, 10, 1, 1).data).join() !== '{','.join(map(str, half))}'")
    page.locator(canvas).hover(position={"x": 10, "y": 10})
    readout = page.locator("#hover-readout")
    expect(readout).to_contain_text("Prediction: ")
    hovered = page.locator("#legend li.hover .legend-name")
    expect(hovered).to_have_count(1)
    assert readout.inner_text() == f"Prediction: {hovered.inner_text()}"

    under_cursor = page.locator("#legend li.hover").get_attribute("data-class")
    colour = _pixel(page, canvas, 0, 0)
    page.locator(f'[data-hide="{under_cursor}"]').uncheck()  # hide the class under the cursor
    page.wait_for_function(f"Array.from(document.querySelector('{canvas}').getContext('2d')"
                           f".getImageData(0, 0, 1, 1).data).join() !== '{','.join(map(str, colour))}'")
    page.locator(canvas).hover(position={"x": 10, "y": 10})
    expect(page.locator("#legend li.hover")).to_have_attribute("data-class", under_cursor)
    shots(page, "inference")


def _infer_validation(page: Page, shots) -> None:
    follow(page, page.get_by_role("link", name="Infer again"))
    page.get_by_text("Validation images", exact=True).click()
    page.get_by_label("How many").fill("2")
    page.get_by_role("button", name="Run inference").click()
    expect(page.locator("article.result")).to_have_count(2, timeout=TRAINING_S)
    expect(page.locator("canvas.overlay[data-part=truth][data-ready]")).to_have_count(2)
    score = re.compile(r"pixel accuracy \d+\.\d % · mean IU \d+\.\d %")
    expect(page.locator("article.result .score").first).to_contain_text(score)
    expect(page.locator(".stats")).to_contain_text("Mean IU")
    page.get_by_label("Outline only").check()
    shots(page, "inference-validation")


def _pretrained(page: Page, site, shots) -> None:
    """The model's download imported back as a pretrained model."""
    model_id = page.get_by_role("link", name="tiny").get_attribute("href").rsplit("/", 1)[1]
    download = site.client.get(f"/api/v1/models/{model_id}/download")
    answer = site.client.post_form("/api/v1/pretrained", {"name": "tiny again"},
                                   [("archive", "tiny.tar.gz", download.body)])
    page.goto(f"/pretrained/{answer.json()['jobs'][0]['id']}")
    expect(page.locator("[data-status-badge]")).to_have_text("done", timeout=TRAINING_S)
    expect(page.locator(".plain-list")).to_contain_text(["deploy.prototxt", "sky"])
    expect(page.get_by_role("heading", name="Make an FCN from it")).to_have_count(0)  # not a classifier
    shots(page, "pretrained")
    with page.expect_navigation():
        page.get_by_role("link", name="Train a model from it").click()
    expect(page.get_by_role("radio", name="Pretrained")).to_be_checked()
    expect(page.locator('select[name="pretrained"]')).to_have_value(re.compile(r"^\d{8}-"))


def _jobs_table(page: Page, shots) -> None:
    page.goto("/?tab=inference")
    rows = page.locator("#jobs-table tbody tr")
    expect(rows).to_have_count(2)
    page.get_by_label("Select all on this page").check()
    expect(page.locator("#bulk-count")).to_have_text("2 selected")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete selected").click()
    expect(page.get_by_text("No inference yet.")).to_be_visible()
    page.goto("/?tab=models")
    expect(page.locator("#jobs-table")).to_contain_text("tiny")
    page.get_by_role("link", name="Name").click()
    expect(page.locator('th[aria-sort="ascending"]')).to_have_text(re.compile("Name"))
    shots(page, "jobs")


def test_a_new_user_goes_from_folders_to_overlays(site, page: Page, shots):
    dataset_id = _create_dataset(page, site, shots)
    _train_abort_resume(page, site, dataset_id, shots)
    _infer_upload(page, site, shots)
    _infer_validation(page, shots)
    _pretrained(page, site, shots)
    _jobs_table(page, shots)


def test_the_store_page_lists_every_store_and_unreachable_ones_as_such(page: Page, shots):
    page.goto("/store")
    stores = page.locator("section.store")
    expect(stores).to_have_count(2)
    expect(stores.first).to_contain_text("reachable")
    expect(stores.first.get_by_role("button", name="Import")).to_have_count(3)
    expect(stores.first).to_contain_text("FCN-8s PASCAL VOC")
    expect(stores.nth(1)).to_contain_text("unreachable")
    expect(stores.nth(1).locator(".alert.error")).to_contain_text("127.0.0.1:9")
    shots(page, "store")


def test_a_wrong_address_gets_a_page_that_helps(page: Page, shots):
    page.goto("/models/20990101-000000-abcdef")
    expect(page.get_by_role("heading", name="Nothing here")).to_be_visible()
    expect(page.get_by_text("There is no model with the id 20990101-000000-abcdef.")).to_be_visible()
    expect(page.get_by_label("Look for a job")).to_have_value("20990101-000000-abcdef")
    shots(page, "not-found")
