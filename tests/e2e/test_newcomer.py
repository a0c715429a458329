"""What a new user meets first: the empty home page pointing at the demo folders, the badge of a
server without GPUs, a store import that fails for want of internet and succeeds from a copy of the
weights given in the page, and an Abort that asks first.

These run against a server of their own, which starts with no job."""
import io
import json
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Route, expect

from digitslite.modelstore.entries import add_to_master
from digitslite.networks import get_network
from tests.e2e.conftest import Site, check_watched, open_page
from tests.server.harness import created_id, dataset_request, make_demo, model_request, running_server
from tests.store.helpers import CLASSES, closed_port_url, write_tiny_entry

# Where the offline store's weights are said to be: a host the server may fetch from, where nothing
# answers (as a machine without internet meets the publisher's host).
WEIGHTS_HOST = closed_port_url()


@pytest.fixture(scope="module")
def own_site(tmp_path_factory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("newcomer")
    demo = make_demo(root / "data", count=4, val_count=2)
    env = {"DIGITSLITE_CPU_SLOTS": "3", "DIGITSLITE_STORE_FETCH_HOSTS": WEIGHTS_HOST.removeprefix("http://")}
    with running_server(root / "jobs", [root / "data"], env=env) as server:
        yield Site(server.url, server.client(), demo, root / "jobs")


@pytest.fixture
def own_page(browser: Browser, own_site: Site) -> Iterator[Page]:
    opened, watched = open_page(browser, own_site.url)
    yield opened
    check_watched(opened, watched)


def _offline_store(data: Path) -> tuple[Path, Path]:
    """A store in the data root whose entry's weights live on a host nobody answers at, and a copy of
    those weights elsewhere in the data root (as a user who downloaded them by hand has)."""
    store = data / "offline-store"
    entry = write_tiny_entry(store / "remote-tiny")
    add_to_master(store, "remote-tiny")
    copy = data / "copies" / "weights.caffemodel"
    copy.parent.mkdir()
    shutil.move(entry / "weights.caffemodel", copy)
    info = json.loads((entry / "info.json").read_text())
    info["files"]["weights.caffemodel"]["url"] = f"{WEIGHTS_HOST}/weights.caffemodel"
    (entry / "info.json").write_text(json.dumps(info))
    return store, copy


def test_the_empty_home_page_points_to_the_demo_folders_and_the_badge_says_cpu_only(own_site: Site,
                                                                                    own_page: Page, shots):
    page = own_page
    page.goto("/")
    expect(page.locator(".gpu-badge")).to_have_text("CPU only, 3 slots")
    start = page.locator("#getting-started")
    expect(start).to_contain_text(str(own_site.demo / "images"))
    shots(page, "getting-started")
    start.get_by_role("link", name="New dataset from the demo folders").click()
    expect(page).to_have_url(re.compile(r"/datasets/new\?demo=1$"))
    expect(page.get_by_label("Images folder")).to_have_value(str(own_site.demo / "images"))
    expect(page.get_by_label("Validation labels")).to_have_value(str(own_site.demo / "val_labels"))
    expect(page.get_by_label("Validation labels")).to_be_visible()  # the separate folders are ticked


def test_a_failed_store_import_is_imported_again_from_an_uploaded_copy_of_the_weights(own_site: Site,
                                                                                       own_page: Page, shots):
    client, page = own_site.client, own_page
    store, copy = _offline_store(own_site.demo.parent)
    failed = created_id(client.post("/api/v1/store/import", {"store": str(store), "name": "remote-tiny"}))
    assert client.wait_status(failed)["status"] == "failed"

    page.goto(f"/pretrained/{failed}")
    expect(page.locator("[data-status-badge]")).to_have_text("failed")
    expect(page.locator("[data-message]")).to_have_text("")  # not the step it was at ("started")
    expect(page.locator("#job-error")).to_contain_text("a copy of weights.caffemodel that you already have")
    expect(page.locator("#job-error")).not_to_contain_text("weights-file")
    expect(page.get_by_text("VOC palette")).to_have_count(0)  # no classes card for weights never imported

    shots(page, "failed-import")
    form = page.locator("#local-copy-form")
    form.get_by_label("Upload the .caffemodel").set_input_files(str(copy))
    form.get_by_role("button", name="Import again").click()
    expect(page).not_to_have_url(re.compile(failed))
    expect(page.locator("[data-status-badge]")).to_have_text("done", timeout=60_000)
    for name in CLASSES:
        expect(page.locator("main")).to_contain_text(name)
    expect(page.get_by_role("link", name="Infer")).to_be_visible()


def test_a_failed_store_import_takes_a_copy_from_the_data_folders_and_names_a_wrong_one(own_site: Site,
                                                                                        own_page: Page):
    client, page = own_site.client, own_page
    store = own_site.demo.parent / "offline-store"
    if not store.exists():
        _offline_store(own_site.demo.parent)
    wrong = own_site.demo.parent / "copies" / "other.caffemodel"
    wrong.write_bytes(b"not these weights")
    failed = created_id(client.post("/api/v1/store/import", {"store": str(store), "name": "remote-tiny"}))
    assert client.wait_status(failed)["status"] == "failed"

    page.goto(f"/pretrained/{failed}")
    form = page.locator("#local-copy-form")
    form.get_by_label(re.compile("a file in the data folders")).fill(str(wrong))
    form.get_by_role("button", name="Import again").click()
    expect(page.locator("[data-status-badge]")).to_have_text("failed", timeout=60_000)
    expect(page.locator("#job-error")).to_contain_text("checksum mismatch")

    form = page.locator("#local-copy-form")  # the new failed job offers the form again
    right = wrong.with_name("weights.caffemodel")
    form.get_by_label(re.compile("a file in the data folders")).fill(str(right))
    form.get_by_role("button", name="Import again").click()
    expect(page.locator("[data-status-badge]")).to_have_text("done", timeout=60_000)


@pytest.fixture(scope="module")
def dataset_id(own_site: Site) -> str:
    request = dataset_request(own_site.demo, name="scenes")
    created = created_id(own_site.client.post("/api/v1/datasets", request))
    assert own_site.client.wait_status(created)["status"] == "done"
    return created


def test_abort_asks_first_and_the_model_page_shows_its_solver_and_timeline(own_site: Site, own_page: Page,
                                                                          dataset_id: str):
    client, page, dataset = own_site.client, own_page, dataset_id
    # Posted as a form posts it: every value a string. The API's params carry them typed.
    asked = model_request(dataset, max_iter=100_000, base_lr=0.005)
    fields = {key: str(value) for key, value in asked.items()}
    model = created_id(client.post_form("/api/v1/models", fields))
    request = client.job(model)["params"]["request"]
    assert (request["max_iter"], request["base_lr"], request["batch_size"]) == (100_000, 0.005, 2)
    aborts: list[str] = []

    def count(route: Route) -> None:
        aborts.append(route.request.url)
        route.continue_()

    page.route(f"**/api/v1/jobs/{model}/abort", count)
    page.goto(f"/models/{model}")
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Abort").click()
    expect(page.get_by_role("button", name="Abort")).to_be_enabled()  # the click was handled
    assert questions == ["Abort this job? It stops now."] and aborts == []

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Abort").click()
    expect(page.locator("[data-status-badge]")).to_have_text("aborted", timeout=60_000)
    assert len(aborts) == 1

    # Settings list the solver the job trained with: fcn_tiny's Adam with the rate this request set.
    page.reload()
    solver = page.locator("#effective-solver")
    for name, value in (("type", "Adam"), ("base lr", "0.005"), ("momentum2", "0.999"),
                        ("lr policy", "fixed"), ("max iter", "100000"), ("snapshot", "20")):
        expect(solver.locator(f'dt:text-is("{name}") + dd')).to_have_text(value)
    statuses = page.locator("#timeline .status")
    expect(statuses.last).to_have_text("aborted")
    assert "running" in [text.strip() for text in statuses.all_text_contents()]
    expect(page.locator("#elapsed")).to_have_text(re.compile(r"^\d+ (s|min)"))


def test_a_pretrained_model_uploaded_from_the_browser_runs_inference(own_site: Site, own_page: Page,
                                                                     tmp_path: Path, shots):
    page = own_page
    model = write_tiny_entry(tmp_path / "trained-elsewhere")
    page.goto("/store")
    page.get_by_role("link", name="Upload a pretrained model").click()
    form = page.locator("#pretrained-form")
    shots(page, "pretrained-upload")

    # A net that does not build, and weights of another net, are refused before any job exists, each
    # next to its file chooser.
    broken = tmp_path / "broken.prototxt"
    deploy = (model / "deploy.prototxt").read_text()
    broken.write_text(deploy.replace('bottom: "data"', 'bottom: "nothing"', 1))
    other = write_tiny_entry(tmp_path / "other", grouped=False) / "weights.caffemodel"
    other = other.rename(tmp_path / "other.caffemodel")
    jobs_before = own_site.job_count()
    form.get_by_label("Deploy network (.prototxt)").set_input_files(str(broken))
    form.get_by_label("Weights (.caffemodel)").set_input_files(str(model / "weights.caffemodel"))
    form.get_by_role("button", name="Upload model").click()
    expect(form.locator('[data-error-for="deploy"]')).to_contain_text("Deploy network: broken.prototxt")
    expect(form.locator('[data-error-for="deploy"]')).to_contain_text("nothing")
    form.get_by_label("Deploy network (.prototxt)").set_input_files(str(model / "deploy.prototxt"))
    form.get_by_label("Weights (.caffemodel)").set_input_files(str(other))
    form.get_by_role("button", name="Upload model").click()
    expect(form.locator('[data-error-for="weights"]')).to_contain_text("Weights: other.caffemodel")
    expect(form.locator('[data-error-for="deploy"]')).to_be_hidden()
    assert own_site.job_count() == jobs_before

    form.get_by_label("Deploy network (.prototxt)").set_input_files(str(model / "deploy.prototxt"))
    form.get_by_label("Weights (.caffemodel)").set_input_files(str(model / "weights.caffemodel"))
    form.get_by_label(re.compile("Class names")).set_input_files(str(model / "labels.txt"))
    form.get_by_label("Name", exact=True).fill("trained elsewhere")
    form.get_by_role("button", name="Upload model").click()
    expect(page).to_have_url(re.compile(r"/pretrained/\d[\w-]+$"))
    expect(page.locator("[data-status-badge]")).to_have_text("done", timeout=60_000)
    expect(page.locator("main")).to_contain_text(CLASSES[-1])

    page.locator(".job-actions").get_by_role("link", name="Infer").click()
    images = sorted((own_site.demo / "val_images").iterdir())[:2]
    page.get_by_label("Images", exact=True).set_input_files(images)
    page.get_by_role("button", name="Run inference").click()
    expect(page).to_have_url(re.compile(r"/inference/\d[\w-]+$"))
    expect(page.locator("canvas.overlay[data-ready]")).to_have_count(2, timeout=60_000)
    expect(page.locator("#legend")).to_contain_text(CLASSES[-1])

    # Shown at the images' own ratio (the demo's 64x48), and downloadable: one PNG each, or one zip.
    width, height = Image.open(images[0]).size
    shown = page.locator("article.result img.input").first.bounding_box()
    assert abs(shown["height"] / shown["width"] - height / width) < 0.02
    served = own_site.client.get(page.url.removeprefix(own_site.url)).body.decode()  # as served
    assert served.count(f'width="{width}" height="{height}"') == 4  # each input and prediction
    mask = page.request.get(page.get_by_role("link", name="mask (PNG)").first.get_attribute("href"))
    assert mask.ok and Image.open(io.BytesIO(mask.body())).size == (width, height)
    zipped = page.request.get(page.locator("#download-all").get_attribute("href"))
    assert zipped.ok and zipped.headers["content-type"] == "application/zip"
    names = sorted(zipfile.ZipFile(io.BytesIO(zipped.body())).namelist())
    for kind in ("masks", "overlays"):  # one of each per image, named after it
        found = [name for name in names if name.startswith(f"{kind}/")]
        assert len(found) == 2 and all(any(name.endswith(f"{image.stem}.png") for name in found)
                                       for image in images), names


def test_the_stride_table_explains_its_cumulative_offset(own_page: Page):
    page = own_page
    page.goto("/models/new")
    page.get_by_text("Custom prototxt", exact=True).click()
    page.get_by_label("Network prototxt").fill(get_network("fcn_tiny").network_file.read_text())
    expect(page.locator("#check-status")).to_contain_text("✓")
    page.locator("#strides-panel summary").click()
    explained = page.locator("#strides-explained")
    expect(explained).to_be_visible()
    expect(explained).to_contain_text("accumulated from the output back to the input")
    # What it says holds for the table shown: the first row's cumulative offset is the Crop offset.
    first = page.locator("#strides tbody tr").first.locator("td").last.inner_text()
    crop = f"Crop offset that aligns the output with the input: {first}"
    expect(page.locator("#strides")).to_contain_text(crop)


def test_check_and_create_split_with_the_same_seed_when_none_is_given(own_site: Site, own_page: Page):
    page = own_page
    page.goto("/datasets/new")
    page.get_by_label("Images folder").fill(str(own_site.demo / "images"))
    page.get_by_label("Labels folder").fill(str(own_site.demo / "labels"))
    page.get_by_label("Validation share (%)").fill("25")
    page.get_by_label("Name", exact=True).fill("seeded by the check")
    seed = page.get_by_label("Split seed")
    expect(seed).to_have_value("")
    page.get_by_role("button", name="Check").click()
    expect(page.locator("#report-verdict")).to_contain_text("Ready")
    expect(seed).not_to_have_value("")
    expect(page.locator("#seed-note")).to_be_visible()
    drawn = int(seed.input_value())
    page.get_by_role("button", name="Create dataset").click()
    expect(page).to_have_url(re.compile(r"/datasets/\d[\w-]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    assert own_site.client.wait_status(job_id)["status"] == "done"
    (info,) = (own_site.jobs_dir / job_id).rglob("dataset.json")
    assert json.loads(info.read_text())["seed"] == drawn


def _best_mean_iu(jobs_dir: Path, job_id: str) -> float:
    records = [json.loads(line) for line in (jobs_dir / job_id / "metrics.jsonl").read_text().splitlines()]
    return max(record["mean_iu"] for record in records if record["phase"] == "val")


def test_the_model_table_shows_and_sorts_by_dataset_network_mean_iu_progress_and_elapsed(
        own_site: Site, own_page: Page, dataset_id: str, shots):
    client, page = own_site.client, own_page
    models = [created_id(client.post("/api/v1/models", model_request(
        dataset_id, name=f"table {rate}", base_lr=rate, max_iter=4, test_interval=2, snapshot_interval=4)))
        for rate in (0.01, 0.0001)]
    for model in models:
        assert client.wait_status(model, timeout=300)["status"] == "done"
    best = {model: _best_mean_iu(own_site.jobs_dir, model) for model in models}
    assert best[models[0]] != best[models[1]]

    page.goto("/?tab=models&q=table")
    head = page.locator("#jobs-table thead")
    for title in ("Dataset", "Network", "Best val mean IU", "Progress", "Elapsed"):
        expect(head).to_contain_text(title)
    rows = page.locator("#jobs-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first.locator('[data-column="dataset"]')).to_have_text("scenes")
    expect(rows.first.locator('[data-column="network"]')).to_have_text("fcn_tiny")
    expect(rows.first.locator('[data-column="progress"]')).to_have_text("100 %")
    expect(rows.first.locator('[data-column="elapsed"]')).to_have_text(re.compile(r"^\d+ (s|min)"))

    shots(page, "model-table")
    head.get_by_role("link", name="Best val mean IU").click()
    expect(page).to_have_url(re.compile(r"sort=mean_iu&order=desc"))
    ranked = sorted(models, key=best.get, reverse=True)
    shown = [f"{100 * best[model]:.1f} %" for model in ranked]
    expect(page.locator('#jobs-table tbody [data-column="mean_iu"]')).to_have_text(shown)
    expect(rows.first).to_contain_text(ranked[0])
    head.get_by_role("link", name=re.compile("Best val mean IU")).click()
    expect(page).to_have_url(re.compile(r"sort=mean_iu&order=asc"))
    expect(rows.first).to_contain_text(ranked[1])
    head.get_by_role("link", name="Elapsed").click()
    expect(page).to_have_url(re.compile(r"sort=elapsed&order=desc"))
    expect(rows).to_have_count(2)

    # Each finished model's page logs as Caffe does: a line per display interval, a line per test pass.
    model = models[0]
    lines = (own_site.jobs_dir / model / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    train = next(record for record in records if record["phase"] == "train")
    tested = [record for record in records if record["phase"] == "val"][-1]
    page.goto(f"/models/{model}")
    log = page.locator("#log")
    expect(log).to_contain_text(
        f"Iteration {train['iteration']}, loss = {train['loss']:.4g}, lr = {train['lr']:.4g}")
    expect(log).to_contain_text(f"Iteration {tested['iteration']}, Testing net (val): ")
    expect(log).to_contain_text(f"mean_iu = {tested['mean_iu']:.4g}")


def test_the_gallery_names_files_and_opens_a_record_large_with_its_classes(own_site: Site, own_page: Page,
                                                                          dataset_id: str, shots):
    page = own_page
    page.goto(f"/datasets/{dataset_id}?stage=val#explore")
    shown = page.locator("#gallery .record-name").all_text_contents()
    val_images = sorted(path.name for path in (own_site.demo / "val_images").iterdir())
    assert sorted(shown) == val_images  # file names, not LMDB keys

    first = shown[0]
    page.get_by_role("button", name=f"Open {first} large").click()
    dialog = page.locator("#record-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#record-title")).to_have_text(first)
    label = own_site.demo / "val_labels" / f"{Path(first).stem}.png"
    present = np.unique(np.asarray(Image.open(label))).tolist()
    expect(dialog.locator("#record-legend li")).to_have_count(len(present))
    for index in present:
        expect(dialog.locator(f'#record-legend li[data-class="{index}"]')).to_contain_text(f"class {index}")
    expect(dialog.locator("#record-image")).to_have_js_property("naturalWidth", Image.open(label).size[0])
    shots(page, "record-large")
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()


def test_a_dataset_from_text_file_lists_in_the_form(own_site: Site, own_page: Page):
    page, demo = own_page, own_site.demo
    lists = demo.parent / "lists"
    lists.mkdir(exist_ok=True)
    images = sorted(path.stem for path in (demo / "images").iterdir())
    (lists / "train.txt").write_text("".join(f"../demo/images/{name}.jpg ../demo/labels/{name}.png\n"
                                             for name in images))
    (lists / "val.txt").write_text("../demo/val_images/0000.jpg ../demo/val_labels/0000.png\n"
                                   "../demo/val_images/nope.jpg ../demo/val_labels/nope.png\n")
    page.goto("/datasets/new")
    page.get_by_text("Text-file lists", exact=True).click()
    page.get_by_label("Training list").fill(str(lists / "train.txt"))
    page.get_by_label("Validation list, optional").fill(str(lists / "val.txt"))
    page.get_by_label("Name", exact=True).fill("from lists")
    page.get_by_role("button", name="Check").click()
    problems = page.locator("#report-problems")
    expect(problems).to_contain_text("listed files that do not exist")
    expect(problems).to_contain_text(f"{lists / 'val.txt'}:2")

    (lists / "val.txt").write_text("../demo/val_images/0000.jpg ../demo/val_labels/0000.png\n")
    page.get_by_role("button", name="Check").click()
    expect(page.locator("#report-verdict")).to_contain_text(f"Ready: {len(images)} training and 1 validation")
    page.get_by_role("button", name="Create dataset").click()
    expect(page).to_have_url(re.compile(r"/datasets/\d[\w-]+$"))
    job = own_site.client.wait_status(page.url.rsplit("/", 1)[1])
    assert job["status"] == "done" and job["params"]["request"]["train_list"] == str(lists / "train.txt")
