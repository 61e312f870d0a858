"""The dashboard in a real headless Chromium against the served API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from playwright.sync_api import Page, expect

from ledger.client import LedgerClient
from tests.dashboard.helpers import counts, seed, sign_in


def test_the_page_shows_the_api_numbers_and_a_progress_bar_moves(
    page: Page, token: str, writer: LedgerClient, screenshots: Path
) -> None:
    seed(writer)
    sign_in(page, token)

    by_status = {g.status: g.count for g in writer.stats("status").groups}
    expect(page.locator("#count-failed")).to_have_text(str(by_status["failed"]))
    assert counts(page) == {
        "total": writer.stats("status").total,
        **{name: by_status.get(name, 0) for name in counts(page) if name != "total"},
    }
    by_type = {g.job_type: g.count for g in writer.stats("job_type").groups}
    shown = {
        row.get_attribute("data-job-type"): int(row.locator(".type-total").inner_text())
        for row in page.locator("#types tbody tr").all()
    }
    assert shown == by_type == {"export": 3, "full_sync": 2}
    assert page.locator("#chart-types rect").count() >= 2
    failure = page.locator("#failures tbody tr[data-job-id=exp-failed] .error-message")
    expect(failure).to_have_text("disk full on /var/spool <script>alert(1)</script>")

    bar = page.locator("#running .progress[data-job-id=exp-running]")
    expect(bar).to_have_attribute("aria-valuenow", "20")
    width_before = bar.locator(".fill").bounding_box()
    writer.progress("exp-running", 65)
    expect(bar).to_have_attribute("aria-valuenow", "65", timeout=5000)
    page.wait_for_timeout(600)  # the width's transition
    width_after = bar.locator(".fill").bounding_box()
    assert width_before and width_after and width_after["width"] > width_before["width"] * 2
    page.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)

    assert page.evaluate("sessionStorage.getItem('ledger.token')") == token
    assert page.evaluate("localStorage.length") == 0 and page.evaluate("document.cookie") == ""
    assert token not in page.url


def test_the_job_type_filter_narrows_every_number(
    page: Page, token: str, writer: LedgerClient
) -> None:
    seed(writer)
    sign_in(page, token)
    page.select_option("#filter-type", "full_sync")
    expect(page.locator("#count-total")).to_have_text("2")
    assert counts(page) == {
        "total": 2,
        "pending": 1,
        "running": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 1,
    }
    expect(page.locator("#running tbody tr")).to_have_count(0)
    expect(page.locator("#failures tbody tr")).to_have_count(0)


def test_the_time_range_selects_what_stats_and_failures_cover(page: Page, token: str) -> None:
    sign_in(page, token)
    # The day's failures are asked for after its stats; both are awaited, so the
    # request checked below can only come from the second choice.
    with (
        page.expect_request(lambda r: all(s in r.url for s in ("jobs?", "failed", "start_date"))),
        page.expect_request(lambda r: "/api/v1/stats" in r.url) as asked,
    ):
        page.select_option("#filter-range", "1")
    start = parse_qs(urlsplit(asked.value.url).query)["start_date"][0]
    since = datetime.fromisoformat(start.replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - since) - timedelta(days=1)) < timedelta(minutes=1)
    with page.expect_request(lambda r: "/api/v1/jobs?" in r.url and "failed" in r.url) as asked:
        page.select_option("#filter-range", "")
    assert "start_date" not in parse_qs(urlsplit(asked.value.url).query)


def test_a_job_link_opens_its_detail_and_timeline(
    page: Page, token: str, writer: LedgerClient, screenshots: Path
) -> None:
    seed(writer)
    sign_in(page, token)
    page.click("#failures a.job-link")
    expect(page.locator("#job-detail")).to_be_visible()
    expect(page.locator("#detail-id")).to_have_text("exp-failed")
    expect(page.locator("dd[data-field=status]")).to_have_text("failed")
    expect(page.locator("dd[data-field=error_message]")).to_contain_text("disk full")
    expect(page.locator("#timeline-source")).not_to_be_empty()
    steps = page.locator("#timeline li strong").all_inner_texts()
    assert steps[0].startswith("created") and steps[-1].startswith("failed"), steps
    page.screenshot(path=str(screenshots / "dashboard-job.png"), full_page=True)


def test_a_refused_token_asks_again(page: Page) -> None:
    page.fill("#token-input", "not-a-token")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("not accepted")
    assert page.evaluate("sessionStorage.getItem('ledger.token')") is None


def test_the_page_and_its_files_are_served_with_a_strict_policy(base_url: str) -> None:
    page = httpx.get(f"{base_url}/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for name in ("dashboard.js", "dashboard.css"):
        static = httpx.get(f"{base_url}/dashboard/static/{name}")
        assert static.status_code == 200 and static.content
    assert httpx.get(f"{base_url}/dashboard/static/../app.py").status_code == 404


def test_a_reader_token_polls(page: Page, token: str) -> None:
    sign_in(page, token)
    expect(page.locator("body[data-live=poll]")).to_have_count(1)
    expect(page.locator("#freshness")).to_contain_text("polling every")
