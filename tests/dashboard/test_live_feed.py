"""The dashboard with an auditor token: the live event feed and every event of a job."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from ledger.client import LedgerClient
from ledger.settings import Settings
from ledger.tokens import TokenStore
from tests.dashboard.helpers import seed, sign_in


def test_with_an_auditor_token_the_live_feed_moves_the_bar(
    browser: Browser, base_url: str, settings: Settings, writer: LedgerClient, screenshots: Path
) -> None:
    seed(writer)
    _, auditor = TokenStore(settings).create("acme", "auditor", label="dashboard tests")
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    # Polling once a minute: within the test only the feed can move the bar.
    page.goto(f"{base_url}/dashboard?poll_ms=60000")
    sign_in(page, auditor)
    expect(page.locator("body[data-live=feed]")).to_have_count(1)
    bar = page.locator("#running .progress[data-job-id=exp-running]")
    expect(bar).to_have_attribute("aria-valuenow", "20")
    writer.progress("exp-running", 85)
    expect(bar).to_have_attribute("aria-valuenow", "85", timeout=5000)
    writer.succeed("exp-running")
    expect(page.locator("#count-completed")).to_have_text("2", timeout=5000)
    expect(page.locator("#running tbody tr")).to_have_count(0)
    expect(page.locator("#freshness")).to_contain_text("live feed")
    page.screenshot(path=str(screenshots / "dashboard-live.png"), full_page=True)
    context.close()


def test_an_auditor_sees_every_event_of_a_job_in_its_timeline(
    page: Page, settings: Settings, writer: LedgerClient
) -> None:
    seed(writer)
    _, auditor = TokenStore(settings).create("acme", "auditor", label="dashboard tests")
    sign_in(page, auditor)
    page.click("#running a.job-link")
    expect(page.locator("#timeline-source")).to_have_text("Every event of the job, in order.")
    steps = page.locator("#timeline li strong").all_inner_texts()
    assert steps == ["created · v1", "started · v2", "progress · v3"]
    expect(page.locator("#timeline li").nth(2)).to_contain_text("20%")
