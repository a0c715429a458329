"""Steps the browser stories share: following a link, where a new job lands, and the new-model form's
training settings."""
from playwright.sync_api import Page

JOB_URL = r"/{}/\d{{8}}-\d{{6}}-[0-9a-f]{{6}}$"  # .format(kind): a job page of that kind


def follow(page: Page, link) -> None:
    """Click a link and wait until the new page has loaded (its scripts have run)."""
    with page.expect_navigation():
        link.click()


def fill_training(page: Page, *, iterations: int, batch: int, test_every: int, snapshot_every: int,
                  log_every: int, name: str) -> None:
    """The new-model form's training length (in iterations), batch size, intervals and job name."""
    page.get_by_label("training length").fill(str(iterations))
    page.get_by_label("unit").select_option("max_iter")
    page.get_by_label("Batch size").fill(str(batch))
    page.get_by_label("Test every").fill(str(test_every))
    page.get_by_label("Snapshot every").fill(str(snapshot_every))
    page.get_by_label("Log every").fill(str(log_every))
    page.get_by_label("Name", exact=True).fill(name)
