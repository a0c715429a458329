"""Screens that must never say something wrong (issue 13): the model form shows the solver that will
run and the model's own dataset when training further, "Customize" keeps that one solver, the model
page counts the real iteration and lists each snapshot once, the confusion matrix fits its card, a
refused create leaves no empty heading, the store page follows an import to its end and formats each
metric by its kind.

These run against a server of their own: one model trained with a solver unlike any network's."""
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Page, expect

from digitslite.networks import get_network
from tests.e2e.conftest import Site, check_watched, open_page
from tests.server.harness import created_id, dataset_request, make_demo, model_request, running_server

# The trained model's solver: Adam 0.002, step policy (100, 0.5), 4 iterations, a snapshot every 2.
TRAINED = {"solver_type": "Adam", "base_lr": 0.002, "lr_policy": "step", "stepsize": 100, "gamma": 0.5,
           "max_iter": 4, "snapshot_interval": 2, "test_interval": 2, "display": 20}
LR_TRACE = "document.getElementById('lr-chart').data?.[0]?.y?.[0]"


@dataclass
class Trained:
    site: Site
    own_dataset: str    # the model's dataset
    newer_dataset: str  # made after the model: the one a form would preselect as the newest
    model: str


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Iterator[Trained]:
    root = tmp_path_factory.mktemp("screens")
    demo = make_demo(root / "data", count=4, val_count=2)
    env = {"DIGITSLITE_STORE_URLS": str(root / "data" / "store")}
    with running_server(root / "jobs", [root / "data"], env=env) as server:
        client = server.client()
        own = created_id(client.post("/api/v1/datasets", dataset_request(demo, name="own data")))
        assert client.wait_status(own)["status"] == "done"
        model = created_id(client.post("/api/v1/models", model_request(own, name="adam-step", **TRAINED)))
        assert client.wait_status(model)["status"] == "done"
        newer = created_id(client.post("/api/v1/datasets", dataset_request(demo, name="newer data")))
        assert client.wait_status(newer)["status"] == "done"
        yield Trained(Site(server.url, client, demo, root / "jobs"), own, newer, model)


@pytest.fixture
def own_page(browser: Browser, trained: Trained) -> Iterator[Page]:
    opened, watched = open_page(browser, trained.site.url)
    yield opened
    check_watched(opened, watched)


def _solver_file(trained: Trained, job_id: str) -> str:
    response = trained.site.client.get(f"/api/v1/jobs/{job_id}/files/solver.prototxt")
    assert response.status == 200, response.body
    return response.body.decode()


def test_train_further_shows_and_runs_the_models_solver_on_its_own_dataset(trained: Trained, own_page: Page):
    page = own_page
    page.goto(f"/models/{trained.model}")
    page.locator("table.snapshots").get_by_role("link", name="Train further").first.click()
    expect(page.locator('[name="dataset"]')).to_have_value(trained.own_dataset)
    note = page.locator("#dataset-ignore")
    expect(note).to_contain_text("Pixels labelled 255 (this dataset's ignore value)")
    expect(page.locator('[name="solver_type"] option').first).to_have_text("Adam (network's)")
    expect(page.locator('[name="lr_policy"] option').first).to_have_text("step (network's)")
    expect(page.locator('[name="base_lr"]')).to_have_attribute("placeholder", "0.002")
    expect(page.locator('[name="stepsize"]')).to_have_attribute("placeholder", "100")
    expect(page.locator('[name="gamma"]')).to_have_attribute("placeholder", "0.5")
    expect(page.locator("#lr-caption")).to_have_text(
        "Learning rate over 4 iterations (the network's length).")
    page.wait_for_function(f"Math.abs({LR_TRACE} - 0.002) < 1e-9")

    page.get_by_label("Name", exact=True).fill("further")
    page.get_by_role("button", name="Create model").click()
    page.wait_for_url("**/models/2*")
    further = page.url.rsplit("/", 1)[-1]
    assert trained.site.client.wait_status(further)["status"] == "done"
    assert trained.site.client.job(further)["params"]["dataset"] == trained.own_dataset
    solver = _solver_file(trained, further)
    for line in ('type: "Adam"', "base_lr: 0.002", 'lr_policy: "step"', "stepsize: 100", "gamma: 0.5"):
        assert line in solver, f"{line} not in the solver that ran:\n{solver}"


def test_customize_keeps_the_one_solver_on_screen(trained: Trained, own_page: Page):
    page = own_page
    page.goto(f"/models/new?dataset={trained.own_dataset}")
    page.get_by_label("fcn_tiny").check()
    page.wait_for_function(f"Math.abs({LR_TRACE} - 0.002) < 1e-9")  # fcn_tiny's Adam 0.002, fixed
    page.get_by_role("button", name="Customize this network").click()
    expect(page.locator("#prototxt")).to_have_value(re.compile(r"num_output: \{\{num_classes\}\}"))
    expect(page.locator('[name="solver_type"]')).to_have_value("Adam")
    expect(page.locator('[name="base_lr"]')).to_have_value("0.002")
    expect(page.locator('[name="lr_policy"]')).to_have_value("fixed")
    expect(page.locator('[name="weight_decay"]')).to_have_value("0.0001")
    expect(page.locator('[name="test_interval"]')).to_have_value("200")
    expect(page.locator('[name="snapshot_interval"]')).to_have_value("500")
    expect(page.locator('[name="display"]')).to_have_value("20")
    expect(page.locator("#lr-caption")).to_have_text("Learning rate over 2000 iterations.")
    page.wait_for_function(f"Math.abs({LR_TRACE} - 0.002) < 1e-9")


def test_the_model_page_counts_the_real_iteration_and_lists_each_snapshot_once(trained: Trained,
                                                                             own_page: Page):
    page = own_page
    with page.expect_response(lambda response: response.url.endswith(f"/models/{trained.model}/snapshots")):
        page.goto(f"/models/{trained.model}")  # the stream replays both snapshots, then ends
    expect(page.locator("#stat-iteration")).to_have_text("4")  # no display point after iteration 0
    options = page.locator('#publish-form [name="snapshot"] option')
    expect(options).to_have_text(["4", "2"])
    expect(page.locator('#publish-form [name="snapshot"]')).to_have_value("4")


def test_a_confusion_matrix_of_40_classes_fits_its_card_and_says_what_it_shows(trained: Trained,
                                                                               own_page: Page, shots):
    page, classes = own_page, 40
    matrix = [[(10 if truth == predicted else 1) for predicted in range(classes)] for truth in range(classes)]
    record = {"iteration": 4, "phase": "val", "mean_iu": 0.5, "per_class_iu": [0.5] * classes,
              "confusion_matrix": matrix}
    body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in (
        ("status", {"status": "done", "progress": 1.0, "message": "done", "error": None, "transitions": 99}),
        ("metrics", {"records": [record], "next": 1}), ("end", {"status": "done"})))
    page.route(f"**/api/v1/jobs/{trained.model}/events*",
               lambda route: route.fulfill(body=body, headers={"Content-Type": "text/event-stream"}))
    page.goto(f"/models/{trained.model}")
    card = page.locator("#confusion-card")
    expect(card.locator("table.confusion tbody tr")).to_have_count(classes)
    expect(card).to_contain_text("Rows: true class, columns: predicted class")
    fits = "card => card.scrollWidth <= card.clientWidth && card.getBoundingClientRect().right <= innerWidth"
    assert card.evaluate(fits)
    sticky = card.locator("table.confusion thead th").nth(5).evaluate("th => getComputedStyle(th).position")
    assert sticky == "sticky"
    shots(page, "confusion-40")


def test_a_refused_create_leaves_no_empty_first_pairs_heading(trained: Trained, own_page: Page):
    page, demo = own_page, trained.site.demo
    colours = (demo / "colormap.txt").read_text().splitlines()
    (demo / "no_sign_colormap.txt").write_text("\n".join(colours[:-1]) + "\n")  # the sign colour is gone
    page.goto("/datasets/new")
    page.get_by_label("Images folder").fill(str(demo / "images"))
    page.get_by_label("Labels folder").fill(str(demo / "labels_rgb"))
    page.get_by_label("Validation share (%)").fill("25")
    page.get_by_text("RGB + colour map", exact=True).click()
    page.get_by_label("Colour map file").fill(str(demo / "no_sign_colormap.txt"))
    page.get_by_role("button", name="Create dataset").click()
    expect(page.locator("#form-error")).to_contain_text("the dataset has errors")
    expect(page.locator("table.problems")).to_contain_text("label colours that are not in the colour map")
    expect(page.get_by_role("heading", name="First pairs")).to_be_hidden()


def test_the_store_page_follows_a_failed_import_to_its_end(trained: Trained, own_page: Page):
    page = own_page
    page.goto("/store")
    store = page.locator("section.store").first
    store.get_by_role("button", name="Import").first.click()
    outcome = store.locator(".import [role=status]").first
    expect(outcome.locator(".status")).to_have_text("failed", timeout=120_000)
    expect(outcome).not_to_contain_text("Queued")


def test_a_published_entry_shows_each_metric_by_its_kind(trained: Trained, own_page: Page):
    client, page = trained.site.client, own_page
    published = client.post(f"/api/v1/models/{trained.model}/publish", {"store_dir": "store", "name": "adam"})
    assert published.status == 201, published.body
    metrics = published.json()["info"]["metrics"]
    page.goto("/store")
    row = page.locator("section.store").nth(1).locator("tr", has_text="adam")
    cell = row.locator("td").nth(2)
    loss = float(f"{metrics['loss']:.4g}")
    expect(cell).to_contain_text(f"loss {loss:g}")
    expect(cell).not_to_contain_text(re.compile(r"loss [0-9.]+ %"))  # a loss is never a percentage
    expect(cell).to_contain_text(f"mean_iu {100 * metrics['mean_iu']:.1f} %")
    expect(cell).to_contain_text(f"pixel_accuracy {100 * metrics['pixel_accuracy']:.1f} %")
    expect(cell).to_have_text(re.compile(r"\(at iteration 4\)$"))  # when they were measured, not a metric


def test_a_job_failed_on_weights_that_never_fit_offers_no_resume(trained: Trained, own_page: Page):
    client, page = trained.site.client, own_page
    narrower = get_network("fcn_tiny").network_file.read_text().replace("num_output: 16", "num_output: 8", 1)
    failed = created_id(client.post("/api/v1/models", {
        "dataset": trained.own_dataset, "network_prototxt": narrower, "weights_job": trained.model,
        "max_iter": 2, "batch_size": 1, "name": "narrower"}))
    job = client.wait_status(failed)
    assert job["status"] == "failed" and "conv1_1" in job["error"]["message"], job["error"]
    page.goto(f"/models/{failed}")
    expect(page.locator("[data-status-badge]")).to_have_text("failed")
    expect(page.locator("#job-error")).to_contain_text("conv1_1")
    expect(page.get_by_role("button", name="Delete")).to_be_visible()
    expect(page.get_by_role("button", name="Resume")).to_be_hidden()


def test_the_dataset_form_reports_every_bad_path_at_once(trained: Trained, own_page: Page):
    page, demo = own_page, trained.site.demo
    page.goto("/datasets/new")
    page.get_by_label("Images folder").fill(str(demo / "no_such_images"))
    page.get_by_label("Labels folder").fill("/etc")
    page.get_by_label("Validation share (%)").fill("25")
    page.get_by_role("button", name="Create dataset").click()
    expect(page.locator('[data-error-for="images"]')).to_have_text(
        f"images: {demo / 'no_such_images'} is not an existing folder")
    labels = page.locator('[data-error-for="labels"]')
    expect(labels).to_contain_text("labels: /etc is outside the data roots")
    expect(page.locator('[name="images"]')).to_have_attribute("aria-invalid", "true")
    expect(page.locator('[name="labels"]')).to_have_attribute("aria-invalid", "true")


def test_an_unreadable_image_is_refused_by_its_name_and_a_job_runs_the_others(trained: Trained,
                                                                            own_page: Page):
    page, demo = own_page, trained.site.demo
    good = sorted((demo / "val_images").iterdir())[0]
    notes = {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"meeting notes, not an image\n"}
    page.goto(f"/infer/{trained.model}")
    jobs = trained.site.job_count()
    page.locator('input[name="images"]').set_input_files(
        [{"name": good.name, "mimeType": "image/png", "buffer": good.read_bytes()}, notes])
    page.get_by_role("button", name="Run inference").click()
    error = page.locator('[data-error-for="images"]')
    expect(error).to_contain_text("images: 'notes.jpg' cannot be read as an image")
    assert trained.site.job_count() == jobs  # refused at upload: no job

    mixed = demo / "mixed"  # a server folder that already holds the bad file: the job skips it
    mixed.mkdir()
    (mixed / good.name).write_bytes(good.read_bytes())
    (mixed / "notes.jpg").write_bytes(notes["buffer"])
    job = created_id(trained.site.client.post(f"/api/v1/models/{trained.model}/infer",
                                              {"folder": str(mixed)}))
    assert trained.site.client.wait_status(job)["status"] == "done"
    page.goto(f"/inference/{job}")
    expect(page.locator("#unreadable")).to_contain_text("notes.jpg: cannot be read as an image")
    expect(page.locator("#unreadable")).not_to_contain_text(str(mixed))  # the user's name, no server path
    expect(page.locator("article.result")).to_have_count(1)
    expect(page.locator("article.result h3")).to_contain_text(good.name)
    expect(page.get_by_role("button", name="Resume")).to_be_hidden()


def test_an_inference_page_outlives_its_force_deleted_dataset(trained: Trained, own_page: Page):
    client, page = trained.site.client, own_page
    doomed = created_id(client.post("/api/v1/datasets", dataset_request(trained.site.demo, name="doomed")))
    assert client.wait_status(doomed)["status"] == "done"
    job = created_id(client.post(f"/api/v1/models/{trained.model}/infer", {"dataset": doomed, "limit": 2}))
    assert client.wait_status(job)["status"] == "done"
    assert client.delete(f"/api/v1/jobs/{doomed}").status == 409  # the inference job uses it
    assert client.delete(f"/api/v1/jobs/{doomed}", force=1).status in (200, 204)

    failed: list[str] = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    page.goto(f"/inference/{job}")
    results = page.locator("article.result")
    expect(results).to_have_count(2)
    expect(results.locator('canvas[data-part="truth"]')).to_have_count(2)  # the ground-truth column stays
    page.wait_for_function("[...document.querySelectorAll('img.input')].every(img => img.complete)")
    assert page.evaluate("[...document.querySelectorAll('img.input')].every(img => img.naturalWidth > 0)")
    page.wait_for_load_state("networkidle")
    assert failed == [], f"the page asked for what is gone: {failed}"


def test_the_dataset_form_names_its_own_controls_never_cli_flags(trained: Trained, own_page: Page):
    page, demo = own_page, trained.site.demo
    colours = (demo / "colormap.txt").read_text().splitlines()
    (demo / "no_sign_colormap.txt").write_text("\n".join(colours[:-1]) + "\n")  # the sign colour is gone
    page.goto("/datasets/new")
    page.get_by_label("Images folder").fill(str(demo / "images"))
    page.get_by_label("Labels folder").fill(str(demo / "labels_rgb"))
    page.get_by_label("Validation share (%)").fill("25")
    page.get_by_text("RGB + colour map", exact=True).click()
    page.get_by_label("Colour map file").fill(str(demo / "no_sign_colormap.txt"))
    page.get_by_role("button", name="Create dataset").click()
    nearest = "\u201cMatch unknown colours to the nearest class colour\u201d"
    expect(page.locator("table.problems")).to_contain_text(f"repaint those pixels, or turn on {nearest}")
    expect(page.locator("#form-error")).to_contain_text(f"or turn on {nearest}")
    for shown in (page.locator("table.problems"), page.locator("#form-error")):
        expect(shown).not_to_contain_text("--")

    refused = trained.site.client.post("/api/v1/datasets", {
        "images": str(demo / "images"), "labels": str(demo / "labels_rgb"), "val_percent": 25,
        "label_mode": "rgb", "colormap": str(demo / "no_sign_colormap.txt")})
    assert refused.status == 201  # no pixel is read in a request: the job checks, and fails
    failed = trained.site.client.wait_status(created_id(refused))
    assert failed["status"] == "failed"
    assert "or turn on the nearest field" in failed["error"]["message"]  # the API's own words
