"""Colorization as a user lives it, in Chromium against a real server: colour photos become a
colorization dataset through the form's task switch, colorize_classes trains with its colour scores
live on the model page, and its inference page shows grey | colourised | original, whose picture
changes when the temperature slider moves (decoded again on the server, the net does not run)."""
import re

from playwright.sync_api import Page, expect

from digitslite.datasets.colorize.demo import write_colour_demo
from tests.e2e.steps import JOB_URL, fill_training, follow

TRAINING_S = 180_000  # ms: generous bounds for a loaded CI machine


def _pixels_of(page: Page, selector: str) -> str:
    """The picture an <img> shows, read back through a canvas (same origin)."""
    return page.evaluate(f"""() => {{
        const image = document.querySelector('{selector}');
        const canvas = document.createElement('canvas');
        canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
        const context = canvas.getContext('2d');
        context.drawImage(image, 0, 0);
        return Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data).join();
    }}""")


def _job_id(page: Page) -> str:
    return page.url.rsplit("/", 1)[1]


def test_colour_photos_to_a_colourised_picture_with_a_temperature_slider(site, page: Page, shots):
    created: list[str] = []
    try:
        _story(site, page, shots, created)
    finally:   # the server is shared by the session's browser tests, which count their own jobs
        for job_id in reversed(created):
            site.client.delete(f"/api/v1/jobs/{job_id}", force="true")


def _story(site, page: Page, shots, created: list[str]) -> None:
    photos = write_colour_demo(site.demo.parent / "colour", count=8, val_count=4, width=32, height=32)["path"]
    page.goto("/datasets/new")
    page.get_by_text("Colorization: colour photos").click()
    expect(page.get_by_role("radio", name=re.compile("Colorization"))).to_be_checked()
    page.get_by_label("Images folder").fill(f"{photos}/images")
    page.get_by_label("Separate validation folders").check()
    page.get_by_label("Validation images").fill(f"{photos}/val_images")
    page.get_by_label("Name", exact=True).fill("colour photos")
    page.get_by_role("button", name="Create dataset").click()
    expect(page).to_have_url(re.compile(JOB_URL.format("datasets")))
    created.append(_job_id(page))
    expect(page.locator("[data-status-badge]")).to_have_text("done", timeout=TRAINING_S)

    follow(page, page.get_by_role("link", name="New model on it"))
    page.get_by_role("radio", name=re.compile("colorize_classes ")).check()
    fill_training(page, iterations=12, batch=2, test_every=4, snapshot_every=12, log_every=2, name="bins")
    page.get_by_role("button", name="Create model").click()
    expect(page).to_have_url(re.compile(JOB_URL.format("models")))
    created.append(_job_id(page))
    expect(page.locator("#stat-auc")).to_have_text(re.compile(r"\d+\.\d %"), timeout=TRAINING_S)
    expect(page.locator("#stat-psnr")).to_have_text(re.compile(r"\d+\.\d\d dB"))
    page.wait_for_function("(document.getElementById('chart-colour').data?.[0].x.length ?? 0) > 0")
    expect(page.locator("[data-status-badge]")).to_have_text("done", timeout=TRAINING_S)
    shots(page, "colour-model")

    follow(page, page.locator(".job-actions").get_by_role("link", name="Infer"))
    page.get_by_label("Images", exact=True).set_input_files(f"{photos}/val_images/0000.png")
    page.get_by_role("button", name="Run inference").click()
    expect(page).to_have_url(re.compile(JOB_URL.format("inference")))
    created.append(_job_id(page))
    colourised = "article.result img.colourised"
    expect(page.locator(colourised)).to_have_js_property("naturalWidth", 32, timeout=TRAINING_S)
    expect(page.locator("article.result figcaption")).to_have_text(["Grey input", "Colourised", "Original"])
    expect(page.locator("article.result .score")).to_contain_text(re.compile(r"PSNR \d+\.\d\d dB"))
    before = _pixels_of(page, colourised)
    page.get_by_label("Temperature").fill("2")
    expect(page.locator("#temperature-value")).to_have_text("2")
    expect(page.locator(colourised)).to_have_attribute("src", re.compile(r"temperature=2$"))
    page.wait_for_function(f"document.querySelector('{colourised}').complete")
    assert _pixels_of(page, colourised) != before
    expect(page.locator("article.result a.download")).to_have_attribute("href", re.compile("download=1"))
    shots(page, "colour-inference")
