"""What the clients send and how they wait, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from ledger.client import calls
from ledger.client.calls import RetryPolicy, retry_after


def answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after(answer(503, **{"Retry-After": "2"})) == 2.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= (retry_after(answer(429, **{"Retry-After": later})) or 0) <= 30
    assert retry_after(answer(503, **{"Retry-After": "soon"})) is None
    assert retry_after(answer(503)) is None


def test_a_retry_waits_as_retry_after_says_up_to_the_cap_else_backs_off() -> None:
    policy = RetryPolicy(backoff=0.1, max_backoff=1.0, max_retry_after=5.0)
    assert policy.delay(1, answer(429, **{"Retry-After": "3"})) == 3.0
    assert policy.delay(1, answer(503, **{"Retry-After": "600"})) == 5.0
    waits = [policy.delay(n, None) for n in range(1, 8)]
    assert 0.05 <= waits[0] <= 0.1 and all(0.5 <= w <= 1.0 for w in waits[4:])


def test_each_write_has_its_own_key_and_reads_have_none() -> None:
    first, second = calls.record("job-1", "started"), calls.record("job-1", "started")
    assert first.idempotency_key and second.idempotency_key
    assert first.idempotency_key != second.idempotency_key
    assert first.headers()["Idempotency-Key"] == first.idempotency_key
    assert calls.create_job("export").is_write and calls.batch([]).is_write
    assert not calls.get("job-1").is_write and "Idempotency-Key" not in calls.get("x").headers()
    assert calls.cancel("job-1", if_version=3).headers()["If-Match"] == '"3"'


def test_only_fields_given_are_sent() -> None:
    progress = calls.record("job-1", "progress", progress=40, current_step=None)
    assert progress.body == {"type": "progress", "progress": 40}
    page = calls.page(
        job_type="export",
        status=None,
        start_date=datetime(2026, 1, 2, 3, 4, 5),
        end_date=None,
        page_size=10,
        after=None,
    )
    assert page.params == {"job_type": "export", "start_date": "2026-01-02T03:04:05Z", "first": 10}


@pytest.mark.parametrize(
    ("error", "message"),
    [(ValueError("bad row 17"), "bad row 17"), (TimeoutError(), "TimeoutError")],
)
def test_a_failure_records_the_message_or_the_exception_type(
    error: Exception, message: str
) -> None:
    fields = calls.failure_fields(error)
    assert fields["error_message"] == message
    assert fields["error_details"]["exception"].endswith(type(error).__qualname__)
