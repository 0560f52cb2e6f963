"""A visitor in a real headless Chromium: filter the leaderboard, see the chart, open a model, compare two.

The `browser` fixture fails the test on any console error or uncaught exception of any page it opened, a
Content-Security-Policy violation included: the pages must run under the strict policy the server sends.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import ROOT, missing_service
from tests.factories import make_completed, make_version

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class WatchedBrowser:
    """Chromium whose pages record every console error and uncaught exception (CSP violations are console errors)."""

    def __init__(self, instance) -> None:
        self.instance = instance
        self.problems: list[str] = []

    def watch(self, page) -> None:
        page.on("console", lambda msg: self.problems.append(f"{page.url}: {msg.text}") if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.problems.append(f"{page.url}: uncaught {exc}"))

    def new_page(self, **kwargs):
        page = self.instance.new_page(**kwargs)
        self.watch(page)
        return page

    def new_context(self, **kwargs):
        """A context (own cookies, e.g. a logged-in user) whose every page is watched the same way."""
        context = self.instance.new_context(**kwargs)
        context.on("page", self.watch)
        return context

    def take_problems(self) -> list[str]:
        problems, self.problems = self.problems, []
        return problems


@pytest.fixture
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        missing_service("needs Debian's chromium (apt-get install chromium) for the browser test")
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop in this thread
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)  # fresh temporary profile
        watched = WatchedBrowser(instance)
        yield watched
        instance.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    problems = watched.take_problems()
    if problems:
        pytest.fail("the browser reported errors (a Content-Security-Policy violation is one):\n" + "\n".join(problems))


@pytest.mark.django_db(transaction=True)
def test_a_visitor_filters_sees_curves_opens_a_model_and_compares(live_server, browser) -> None:
    from leaderboard import versioning

    version = make_version("web", publish=True, tasks=2, lengths=[4096, 8192, 16384, 32768])
    versioning.make_default(version)
    make_completed(version, "Steady-70B", {4096: 98, 8192: 97, 16384: 95, 32768: 93})
    make_completed(version, "Fading-8B", {4096: 96, 8192: 90, 16384: 70, 32768: 35})
    make_completed(version, "Local-3B", {4096: 90, 8192: 85, 16384: 80, 32768: 60}, kind="huggingface",
                   points=(("full", 1.0), ("snapkv", 0.25)))
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(live_server.url + "/")
    page.wait_for_selector(".plotly .main-svg")
    assert page.locator("table.board tbody tr").count() == 4
    page.screenshot(path=str(ARTIFACTS / "leaderboard.png"), full_page=True)

    page.select_option("select[name=method]", "snapkv")
    with page.expect_navigation():
        page.click("form.filters button[type=submit]")
    assert "method=snapkv" in page.url, page.url
    rows = page.locator("table.board tbody tr")
    assert rows.count() == 1 and "Local-3B" in rows.first.inner_text()
    page.wait_for_selector(".plotly .main-svg")

    page.goto(live_server.url + "/?method=full")
    first_two = [page.locator("table.board tbody tr th[scope=row] a").nth(i).inner_text() for i in (0, 1)]
    page.locator("input[name=m]").nth(0).check()
    page.locator("input[name=m]").nth(1).check()
    with page.expect_navigation():
        page.click("#compare-form button[type=submit]")
    assert "/compare/" in page.url, page.url
    page.wait_for_selector(".plotly .main-svg")
    assert all(name in page.inner_text("table") for name in first_two)
    page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)

    page.goto(live_server.url + "/?method=full")
    page.click("table.board a:has-text(\"Fading-8B\")")
    page.wait_for_selector("h1:has-text('Fading-8B')")
    assert page.locator(".plotly .main-svg").count() >= 2  # heatmap and curves drew
    page.screenshot(path=str(ARTIFACTS / "model.png"), full_page=True)
