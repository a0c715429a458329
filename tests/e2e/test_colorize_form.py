"""The New dataset form's task switch: a colorization dataset from a folder of colour photos, checked
(chroma histogram and kept bins) and created, then its page."""
from playwright.sync_api import Page, expect

from digitslite.datasets.colorize.demo import write_colour_demo


def test_a_colorization_dataset_through_the_form(site, page: Page, shots):
    scenes = site.demo.parent / "colour_form"
    write_colour_demo(scenes, count=8, val_count=2, width=32, height=32)
    page.goto("/datasets/new")
    page.wait_for_load_state()
    expect(page.get_by_label("Labels folder")).to_be_visible()
    page.get_by_text("Colorization: colour photos", exact=True).click()
    expect(page.get_by_label("Labels folder")).to_be_hidden()
    expect(page.get_by_role("heading", name="Label format")).to_be_hidden()
    page.get_by_label("Images folder").fill(str(scenes / "images"))
    page.get_by_label("Separate validation folders").check()
    page.get_by_label("Validation images").fill(str(scenes / "val_images"))
    page.get_by_label("ab bins").select_option("18x18")
    page.get_by_role("button", name="Check").click()
    expect(page.locator("#report-verdict")).to_have_text(
        "Ready: 8 training and 2 validation photos, 324 ab bins, no problems.")
    expect(page.locator("#report-histogram")).to_be_visible()
    expect(page.locator("#report-bins")).to_contain_text("324 ab bins kept (18x18)")
    shots(page, "check")
    page.get_by_label("Colour space").select_option("yuv")
    expect(page.get_by_label("ab bins")).to_be_hidden()
    page.get_by_label("Colour space").select_option("lab")
    page.get_by_role("button", name="Create dataset").click()
    page.wait_for_url("**/datasets/2*")
    expect(page.get_by_role("heading", name="Chroma of the training photos")).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text("324 ab bins (18x18)")
    expect(page.locator(".gallery img")).to_have_count(16)  # lightness beside the stored colour
    shots(page, "dataset")
