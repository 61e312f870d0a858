"""The asyncio client against a real server: the same calls, awaited."""

from __future__ import annotations

import asyncio

import pytest

from ledger.application import JobLedger
from ledger.client import AsyncLedgerClient, Conflict, JobChange
from tests.client.conftest import FAST_RETRIES
from tests.client.proxy import Proxy
from tests.client.stored import event_names


async def test_a_job_walks_through_its_life(base_url: str, token: str, ledger: JobLedger) -> None:
    async with AsyncLedgerClient(base_url, token) as client:
        job = await client.create_job("full_sync", id="job-1", labels={"team": "id"})
        assert (job.status, job.labels) == ("pending", {"team": "id"})
        await client.start("job-1")
        await client.progress("job-1", 60, records_processed=6)
        assert [(r.id, r.progress) for r in await client.running()] == [("job-1", 60)]
        await client.fail("job-1", "timeout")
        with pytest.raises(Conflict):
            await client.succeed("job-1")
        failed = await client.get("job-1")
        assert (failed.status, failed.error_message) == ("failed", "timeout")
        stats = await client.stats("status,job_type")
        assert [(g.status, g.job_type, g.count) for g in stats.groups] == [
            ("failed", "full_sync", 1)
        ]
    assert event_names(ledger, "job-1") == ["Created", "Started", "Progressed", "Failed"]


async def test_list_iterates_over_every_page(base_url: str, token: str) -> None:
    async with AsyncLedgerClient(base_url, token) as client:
        for n in range(5):
            await client.create_job("export", id=f"job-{n}")
        listed = [job.id async for job in client.list(page_size=2)]
    assert listed == ["job-4", "job-3", "job-2", "job-1", "job-0"]


async def test_changes_reports_changed_jobs(base_url: str, token: str) -> None:
    async with AsyncLedgerClient(base_url, token) as client:
        seen: list[JobChange] = []

        async def tail() -> None:
            async for change in client.changes(poll_interval=0.05):
                seen.append(change)
                if change.job.status == "cancelled":
                    return

        tailing = asyncio.create_task(tail())
        await client.create_job("export", id="job-1")
        await client.cancel("job-1")
        await asyncio.wait_for(tailing, 10)
    assert seen[-1].job.id == "job-1" and seen[-1].position == client.position


async def test_a_lost_answer_is_retried_and_appends_once(
    base_url: str, token: str, ledger: JobLedger
) -> None:
    proxy = Proxy(base_url, ["drop_answer"])
    try:
        async with AsyncLedgerClient(proxy.url, token, retry=FAST_RETRIES) as client:
            job = await client.create_job("export", id="job-1")
    finally:
        proxy.close()
    assert proxy.connections[:2] == ["drop_answer", "pass"]
    assert job.version == 1 and event_names(ledger, "job-1") == ["Created"]
