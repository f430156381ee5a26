"""Debian's chromium under Playwright, for the tests of our web pages (the
table QR page, the owner's dashboard).

    from tests.browser_support import browser  # noqa: F401  (the module's chromium)

    def test_page(browser):
        ctx = browser.new_context(...)
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():
    """One chromium for the module (each test makes its own context), closed after it."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: ./run setup installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()
