"""Client-side batching of progress events onto POST /api/v1/events/batch."""

from __future__ import annotations

import asyncio
import time

from ledger.application import JobLedger
from ledger.client import AsyncLedgerClient, LedgerClient
from tests.client.stored import event_names


def test_a_full_batch_goes_at_once_and_the_rest_when_closed(
    client: LedgerClient, ledger: JobLedger
) -> None:
    client.create_job("export", id="job-1")
    client.start("job-1")
    with client.batcher(max_events=3, interval=60) as batcher:
        for percent in (10, 20, 30, 40, 50, 60, 70):
            batcher.progress("job-1", percent)
        assert batcher.sent == 6  # two full batches, without waiting for the interval
    assert batcher.sent == 7 and batcher.refused == []
    assert event_names(ledger, "job-1") == ["Created", "Started"] + ["Progressed"] * 7
    assert client.get("job-1").progress == 70


def test_waiting_events_go_after_the_interval(client: LedgerClient, ledger: JobLedger) -> None:
    client.create_job("export", id="job-1")
    client.start("job-1")
    batcher = client.batcher(max_events=100, interval=0.2)
    batcher.progress("job-1", 5)
    batcher.progress("job-1", 15, current_step="copying")
    deadline = time.monotonic() + 5
    while batcher.sent < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert batcher.sent == 2
    assert event_names(ledger, "job-1")[-2:] == ["Progressed", "Progressed"]
    batcher.close()


def test_refused_items_are_kept_and_the_others_appended(
    client: LedgerClient, ledger: JobLedger
) -> None:
    client.create_job("export", id="job-1")
    client.start("job-1")
    client.create_job("export", id="job-pending")
    with client.batcher(max_events=10) as batcher:
        batcher.progress("job-1", 10)
        batcher.progress("job-pending", 10)  # not running: refused alone
        batcher.progress("job-1", 20)
        results = batcher.flush()
    assert [result.ok for result in results] == [True, False, True]
    assert [refused.job_id for refused in batcher.refused] == ["job-pending"]
    assert event_names(ledger, "job-1").count("Progressed") == 2


def test_a_run_with_a_batcher_flushes_before_it_succeeds(
    client: LedgerClient, ledger: JobLedger
) -> None:
    client.create_job("export", id="job-1")
    with (
        client.batcher(max_events=50, interval=60) as batcher,
        client.run("job-1", batcher=batcher) as run,
    ):
        for percent in range(10, 100, 10):
            run.progress(percent)
    assert event_names(ledger, "job-1") == ["Created", "Started"] + ["Progressed"] * 9 + [
        "Succeeded"
    ]


async def test_the_async_batcher_flushes_by_count_and_by_interval(
    base_url: str, token: str, ledger: JobLedger
) -> None:
    async with AsyncLedgerClient(base_url, token) as client:
        await client.create_job("export", id="job-1")
        await client.start("job-1")
        async with client.batcher(max_events=2, interval=0.1) as batcher:
            await batcher.progress("job-1", 10)
            await batcher.progress("job-1", 20)
            assert batcher.sent == 2
            await batcher.progress("job-1", 30)
            deadline = time.monotonic() + 5
            while batcher.sent < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert batcher.sent == 3
    assert event_names(ledger, "job-1").count("Progressed") == 3
