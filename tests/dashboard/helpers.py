"""What the dashboard tests share: jobs in every status, signing in, the counts shown."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from ledger.client import LedgerClient

POLL_MS = 250


def seed(writer: LedgerClient) -> None:
    """Five jobs of two types, one in each status."""
    writer.create_job("export", id="exp-done")
    with writer.run("exp-done"):
        pass
    writer.create_job("export", id="exp-failed")
    writer.start("exp-failed")
    writer.fail("exp-failed", "disk full on /var/spool <script>alert(1)</script>")
    writer.create_job("export", id="exp-running")
    writer.start("exp-running")
    writer.progress("exp-running", 20, current_step="copying")
    writer.create_job("full_sync", id="sync-pending")
    writer.create_job("full_sync", id="sync-cancelled")
    writer.cancel("sync-cancelled", "superseded")


def sign_in(page: Page, token: str) -> None:
    expect(page.locator("#login")).to_be_visible()
    page.fill("#token-input", token)
    page.click("#token-form button[type=submit]")
    expect(page.locator("body[data-loaded=true]")).to_have_count(1)


def counts(page: Page) -> dict[str, int]:
    names = ("total", "pending", "running", "completed", "failed", "cancelled")
    return {name: int(page.text_content(f"#count-{name}") or "-1") for name in names}
