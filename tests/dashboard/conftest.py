"""The served API with its dashboard, a headless Chromium, and a writer of tenant acme."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest

from ledger.client import LedgerClient
from ledger.settings import Settings
from ledger.tokens import TokenStore
from tests.client.server import serve
from tests.dashboard.helpers import POLL_MS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM: Final = Path(os.environ.get("LEDGER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS: Final = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    with serve(settings) as url:
        yield url


@pytest.fixture
def token(settings: Settings) -> str:
    """A reader token of tenant acme: all the dashboard needs."""
    _, secret = TokenStore(settings).create("acme", "reader", label="dashboard tests")
    return secret


@pytest.fixture
def writer(base_url: str, settings: Settings) -> Iterator[LedgerClient]:
    _, secret = TokenStore(settings).create("acme", "writer", label="dashboard tests")
    with LedgerClient(base_url, secret) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: $LEDGER_SCREENSHOTS, else the test's own folder."""
    folder = Path(os.environ.get("LEDGER_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto(f"{base_url}/dashboard?poll_ms={POLL_MS}")
    yield opened
    context.close()
    assert errors == [], errors
