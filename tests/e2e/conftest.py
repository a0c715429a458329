"""Browser fixtures: Debian's Chromium driven by Playwright (never a downloaded browser), one real
server per test process, screenshots of each page at desktop and phone size under
test-output/screenshots/, and a check that no page asks any host but the server.

Without /usr/bin/chromium these tests are skipped, with the reason; under CI=true they fail.
"""
import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.server.harness import Client, make_demo, running_server

HERE = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SCREENSHOTS = HERE.parents[1] / "test-output" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 30_000  # for actions and assertions alike: a loaded CI machine may be slow, never wrong
expect.set_options(timeout=WAIT_MS)
# A store that cannot be reached, so the store page shows one of each kind.
UNREACHABLE_STORE = "http://127.0.0.1:9/nowhere"
# Plotly redraws its charts for a new window size a moment after the resize.
CHARTS_FIT = ("[...document.querySelectorAll('.js-plotly-plot')].every(chart => "
              "Number(chart.querySelector('svg.main-svg').getAttribute('width')) <= chart.clientWidth + 1)")
MISSING = (f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium "
           "(apt-get install chromium); Playwright's own browser download is never used")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists() or os.environ.get("CI") == "true":
        return
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.skip(reason=MISSING))


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(MISSING)  # only reached under CI=true: there the browser is required
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Site:
    """The server the pages are tested against, with the demo folders in its data root."""

    url: str
    client: Client
    demo: Path
    jobs_dir: Path

    def job_count(self) -> int:
        return self.client.get("/api/v1/jobs").json()["total"]


@contextlib.contextmanager
def serving(root: Path) -> Iterator[Site]:
    """A server with the demo folders in its data root and no job yet, stopped on leaving."""
    demo = make_demo(root / "data", count=8, val_count=4)
    env = {"DIGITSLITE_STORE_URLS": UNREACHABLE_STORE}
    with running_server(root / "jobs", [root / "data"], env=env) as server:
        yield Site(server.url, server.client(), demo, root / "jobs")


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Iterator[Site]:
    with serving(tmp_path_factory.mktemp("e2e")) as shared:
        yield shared


@pytest.fixture
def fresh_site(tmp_path) -> Iterator[Site]:
    """A server of the test's own: for what depends on there being no dataset yet, whatever ran before."""
    with serving(tmp_path) as fresh:
        yield fresh


@dataclass
class Watched:
    """What a page did that a test must not let pass: requests to other hosts, script errors."""

    origin: str
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def request(self, url: str) -> None:
        if not url.startswith((f"{self.origin}/", "data:", "blob:")):
            self.foreign.append(url)


def open_page(browser: Browser, origin: str) -> tuple[Page, Watched]:
    context = browser.new_context(viewport=DESKTOP, base_url=origin)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    watched = Watched(origin)
    context.on("request", lambda request: watched.request(request.url))
    page.on("pageerror", lambda error: watched.errors.append(str(error)))
    return page, watched


def check_watched(page: Page, watched: Watched) -> None:
    page.context.close()
    assert watched.foreign == [], f"pages asked other hosts than the server: {watched.foreign}"
    assert watched.errors == [], f"script errors on the pages: {watched.errors}"


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Page]:
    opened, watched = open_page(browser, site.url)
    yield opened
    check_watched(opened, watched)


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Callable[[Page, str], None]:
    """shots(page, name): screenshots at 1280x800 and 390x844, checking that the page fits the phone's
    width (nothing wider than the screen but the tables' own scroll boxes)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    module = request.node.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")

    def take(page: Page, name: str) -> None:
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=SCREENSHOTS / f"{module}-{name}-desktop.png", full_page=True)
        page.set_viewport_size(PHONE)
        page.wait_for_function(CHARTS_FIT)
        width = page.evaluate("document.documentElement.scrollWidth")
        page.screenshot(path=SCREENSHOTS / f"{module}-{name}-phone.png", full_page=True)
        page.set_viewport_size(DESKTOP)
        assert width <= PHONE["width"], f"{name} is {width} px wide on a {PHONE['width']} px phone"
    return take


@pytest.fixture
def fresh_page(browser: Browser, fresh_site: Site) -> Iterator[Page]:
    opened, watched = open_page(browser, fresh_site.url)
    yield opened
    check_watched(opened, watched)
