"""Retries: a lost answer, a 429 from a load balancer and a 503 from the server; never twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from ledger.application import JobLedger
from ledger.client import LedgerClient
from ledger.settings import Settings
from tests.client.conftest import FAST_RETRIES
from tests.client.proxy import Proxy
from tests.client.server import serve
from tests.client.stored import event_names


@pytest.fixture
def proxy(base_url: str) -> Iterator[Proxy]:
    through = Proxy(base_url)
    yield through
    through.close()


def test_a_create_whose_answer_was_lost_is_retried_and_appends_once(
    proxy: Proxy, token: str, ledger: JobLedger
) -> None:
    proxy.plan.append("drop_answer")
    with LedgerClient(proxy.url, token, retry=FAST_RETRIES) as client:
        job = client.create_job("export", id="job-1")
    assert proxy.connections[:2] == ["drop_answer", "pass"]
    assert proxy.dropped_answers[0].startswith(b"HTTP/1.1 201")  # the server did create it
    assert (job.id, job.version) == ("job-1", 1)
    assert event_names(ledger, "job-1") == ["Created"]


def test_an_event_whose_answer_was_lost_is_retried_and_appends_once(
    client: LedgerClient, proxy: Proxy, token: str, ledger: JobLedger
) -> None:
    client.create_job("export", id="job-1")
    client.start("job-1")
    proxy.plan.extend(["drop_answer", "drop_answer"])
    with LedgerClient(proxy.url, token, retry=FAST_RETRIES) as through:
        recorded = through.progress("job-1", 50)
        assert through.get("job-1").progress == 50
    assert proxy.connections[:3] == ["drop_answer", "drop_answer", "pass"]
    assert recorded.version == 3
    assert event_names(ledger, "job-1") == ["Created", "Started", "Progressed"]


def test_a_429_is_retried_after_its_retry_after(
    proxy: Proxy, token: str, ledger: JobLedger
) -> None:
    proxy.plan.append("reject_429")
    began = time.monotonic()
    with LedgerClient(proxy.url, token, retry=FAST_RETRIES) as client:
        client.create_job("export", id="job-1")
    assert time.monotonic() - began >= 1.0  # Retry-After: 1, not the 0.05 s backoff
    assert proxy.connections[:2] == ["reject_429", "pass"]
    assert event_names(ledger, "job-1") == ["Created"]


def test_a_503_for_an_unreached_position_is_retried_until_it_is_reached(
    client: LedgerClient, base_url: str, token: str
) -> None:
    client.create_job("export", id="job-1")
    client.start("job-1")
    # Ask to see a position one past the log's head: the server waits 0.3 s, answers 503
    # with Retry-After: 1, and the retry sees it once another write has landed.
    reader = LedgerClient(base_url, token, retry=FAST_RETRIES)
    reader.position = client.position + 1
    later = threading.Timer(0.5, client.progress, args=("job-1", 70))
    later.start()
    began = time.monotonic()
    job = reader.get("job-1")
    reader.close()
    later.join()
    assert time.monotonic() - began >= 1.0
    assert job.progress == 70


def test_the_servers_own_rate_limit_is_waited_out_and_nothing_appends_twice(
    settings: Settings, token: str, ledger: JobLedger
) -> None:
    limited = replace(settings, rate_limit=1.0, rate_burst=2)
    with serve(limited) as url, LedgerClient(url, token, retry=FAST_RETRIES) as client:
        began = time.monotonic()
        for n in range(4):
            client.create_job("export", id=f"job-{n}")
        waited = time.monotonic() - began
    assert waited >= 1.0  # the third and fourth creates were answered 429 and retried
    for n in range(4):
        assert event_names(ledger, f"job-{n}") == ["Created"]
