"""Debian's chromium, headless, driven by Playwright: what every page test opens pages with.

Screenshots go to ``test-output/`` at the top of the checkout (ignored by git), named by test.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connections
from playwright import sync_api as playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-output"
PHONE = {"width": 390, "height": 844}


@contextmanager
def chromium() -> Iterator[playwright.Browser]:
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def live_chromium() -> Iterator[playwright.Browser]:
    """``chromium()`` for tests whose data is committed for served processes to see
    (transactional_db): closes the database connection the test made while Playwright ran. Its
    sync API runs the test in a greenlet, whose context Django gives a connection of its own;
    left open, it keeps the test database from being dropped at the end of the session."""
    with chromium() as opened:
        try:
            yield opened
        finally:
            connections.close_all()


def screenshot(page: playwright.Page, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
