"""Tailing the tenant's event feed: every event once, in order, resumable."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ledger.client import AsyncLedgerClient, FeedEvent, LedgerClient, Unauthorized
from ledger.settings import Settings
from ledger.tokens import TokenStore


@pytest.fixture
def auditor(base_url: str, settings: Settings) -> LedgerClient:
    _, secret = TokenStore(settings).create("acme", "auditor", label="feed tests")
    return LedgerClient(base_url, secret)


def test_events_yields_every_event_in_order_and_resumes_after_a_position(
    client: LedgerClient, auditor: LedgerClient
) -> None:
    client.create_job("export", id="job-1")
    client.start("job-1")
    stop = threading.Event()
    seen: list[FeedEvent] = []

    def tail() -> None:
        for event in auditor.events(poll_interval=0.05, stop=stop):
            seen.append(event)
            if event.type == "succeeded":
                stop.set()

    tailing = threading.Thread(target=tail)
    tailing.start()
    client.progress("job-1", 50, current_step="half")
    client.succeed("job-1")
    tailing.join(timeout=10)
    assert not tailing.is_alive()
    assert [(e.job_id, e.type, e.version) for e in seen] == [
        ("job-1", "created", 1),
        ("job-1", "started", 2),
        ("job-1", "progress", 3),
        ("job-1", "succeeded", 4),
    ]
    assert seen[2].data["progress"] == 50 and seen[-1].position == client.position
    assert [e.position for e in seen] == sorted({e.position for e in seen})

    resumed = auditor.events(after=seen[1].position, poll_interval=0.05)
    assert [next(resumed).type, next(resumed).type] == ["progress", "succeeded"]
    auditor.close()


def test_a_writer_token_may_not_read_the_feed(client: LedgerClient) -> None:
    with pytest.raises(Unauthorized) as refused:
        next(client.events())
    assert refused.value.status == 403


async def test_the_async_feed_tails_new_events(
    base_url: str, settings: Settings, client: LedgerClient
) -> None:
    _, secret = TokenStore(settings).create("acme", "auditor")
    async with AsyncLedgerClient(base_url, secret) as auditor:
        client.create_job("export", id="job-1")
        feed = auditor.events(poll_interval=0.05)
        first = await asyncio.wait_for(anext(feed), 5)
        client.cancel("job-1", "not needed")
        second = await asyncio.wait_for(anext(feed), 5)
        await feed.aclose()
    assert (first.type, second.type) == ("created", "cancelled")
    assert second.data.get("reason") == "not needed"
