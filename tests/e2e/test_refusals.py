"""What the pages refuse before anything is created: a prototxt with a mistake shows the error with its
line as it is typed (and Create is held back), a Crop offset is fixed in one click, and a label folder
with a colour the colour map lacks gets the check report (the form's Check and Create create nothing; a
job queued through the API fails its check, its page showing the whole report and no dataset)."""
import re

from playwright.sync_api import Page, expect

from digitslite.networks import get_network
from tests.server.harness import created_id, dataset_request

TINY = get_network("fcn_tiny").network_file.read_text()
TYPO_LINE = TINY[:TINY.index('bottom: "pool1"')].count("\n") + 1


def _open(page: Page, path: str) -> None:
    page.goto(path)
    page.wait_for_load_state()


def test_a_bad_prototxt_shows_its_line_before_submission(fresh_site, fresh_page: Page, shots):
    site, page = fresh_site, fresh_page  # its blob shapes are the net's own: no dataset to bind to
    jobs = site.job_count()
    _open(page, "/models/new")
    page.get_by_text("Custom prototxt", exact=True).click()
    editor = page.get_by_label("Network prototxt")
    editor.fill(TINY.replace('bottom: "pool1"', 'bottom: "pool9"', 1))
    status = page.locator("#check-status")
    expect(status).to_contain_text(f"Line {TYPO_LINE}, column 3:")
    expect(status).to_contain_text("did you mean 'pool1'")
    expect(page.locator(".gutter .error-line")).to_have_text(str(TYPO_LINE))
    page.get_by_role("button", name="Create model").click()
    expect(page.locator('[data-error-for="network_prototxt"]')).to_contain_text(f"on line {TYPO_LINE}")
    status.get_by_role("button", name="go to line").click()
    selected = page.evaluate("(() => { const t = document.getElementById('prototxt'); "
                             "return t.value.slice(t.selectionStart, t.selectionEnd); })()")
    assert selected.strip() == 'bottom: "pool9"'
    shots(page, "bad-prototxt")

    wrong = TINY.replace("crop_param {\n    axis: 2\n  }", "crop_param {\n    axis: 2\n    offset: 9\n  }")
    editor.fill(wrong)
    expect(page.locator("#crops")).to_contain_text("wrong")
    page.get_by_role("button", name="Write the derived offsets").click()
    expect(status).to_contain_text("✓ 28 layers")
    expect(page.locator("#crops .crop-ok")).to_have_count(2)
    assert "offset: 9" not in editor.input_value() and editor.input_value().count("offset: 2") == 1
    page.locator("#blobs-panel summary").click()
    expect(page.locator("#blobs")).to_contain_text(re.compile(r"score\s*4 × 2 × 224 × 224"))  # no dataset yet
    page.locator("#graph-panel summary").click()
    expect(page.locator("#graph svg .layer")).to_have_count(21)
    shots(page, "fixed-prototxt")
    assert site.job_count() == jobs


def test_a_pasted_network_for_other_classes_is_flagged_with_its_fix(site, page: Page, shots):
    dataset_id = created_id(site.client.post("/api/v1/datasets", dataset_request(site.demo, name="classes")))
    assert site.client.wait_status(dataset_id)["status"] == "done"
    classes = 10    # the demo's classes
    jobs = site.job_count()
    _open(page, "/models/new")
    page.get_by_label("Train on").select_option(dataset_id)
    page.get_by_text("Custom prototxt", exact=True).click()
    editor = page.get_by_label("Network prototxt")
    editor.fill(TINY.replace("{{num_classes}}", "21"))     # as one pastes a VOC network
    status = page.locator("#check-status")
    expect(status).to_contain_text(f"gets scores for 21 classes but the dataset has {classes}")
    page.get_by_role("button", name=f"Set num_output to {classes}").click()
    expect(status).to_contain_text("✓ 28 layers")
    assert f"num_output: {classes}" in editor.input_value() and "num_output: 21" not in editor.input_value()
    shots(page, "classes-fixed")
    assert site.job_count() == jobs


def test_a_label_with_an_unknown_colour_shows_the_report_and_creates_no_dataset(site, page: Page, shots):
    demo = site.demo
    colours = (demo / "colormap.txt").read_text().splitlines()
    (demo / "no_sign_colormap.txt").write_text("\n".join(colours[:-1]) + "\n")  # the sign colour is gone
    jobs = site.job_count()
    _open(page, "/datasets/new")
    page.get_by_label("Images folder").fill(str(demo / "images"))
    page.get_by_label("Labels folder").fill(str(demo / "labels_rgb"))
    page.get_by_label("Validation share (%)").fill("25")
    page.get_by_text("RGB + colour map", exact=True).click()
    page.get_by_label("Colour map file").fill(str(demo / "no_sign_colormap.txt"))
    page.get_by_role("button", name="Check").click()
    verdict = page.locator("#report-verdict")
    expect(verdict).to_have_text("8 file(s) have errors that stop this dataset: fix them and check again. "
                                 "Nothing was created.")
    problems = page.locator("table.problems")
    expect(problems).to_contain_text("label colours that are not in the colour map")
    expect(problems).to_contain_text("(250, 220, 0)")
    expect(page.locator("#report-previews")).to_contain_text("label colours that are not in the colour map")
    expect(page.locator("#report-previews img")).to_have_count(8)  # each image beside its label as stored
    shots(page, "unknown-colour")

    assert site.job_count() == jobs  # the Check created nothing

    page.get_by_role("button", name="Create dataset").click()  # Create checks first: refused on the form
    expect(page.locator("#form-error")).to_contain_text("the dataset has errors")
    expect(problems).to_contain_text("label colours that are not in the colour map")
    assert site.job_count() == jobs

    # The API queues without reading a pixel; the job's check fails and its page shows the report.
    job_id = created_id(site.client.post("/api/v1/datasets", {
        "images": str(demo / "images"), "labels": str(demo / "labels_rgb"), "val_percent": 25,
        "label_mode": "rgb", "colormap": str(demo / "no_sign_colormap.txt")}))
    assert site.client.wait_status(job_id)["status"] == "failed"
    _open(page, f"/datasets/{job_id}")
    report = page.locator("#check-report table.problems")
    expect(report).to_contain_text("label colours that are not in the colour map")
    expect(report).to_contain_text("add the colour to the colour map")
    expect(report).to_contain_text("(250, 220, 0)")
    expect(page.locator("#job-error")).to_contain_text("dataset not created")
    shots(page, "unknown-colour-job")
    assert not (site.jobs_dir / job_id / "dataset").exists()  # nothing half-created
