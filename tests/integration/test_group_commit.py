"""Concurrent writes through the group committer: all appended, in order, few transactions."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from ledger.application import JobLedger, Written
from ledger.commands import Context, NewJob, RecordProgress, Start
from ledger.errors import VersionConflict

CTX = Context(actor="tok", request_id="req")


def test_concurrent_writers_share_transactions_and_lose_nothing(ledger: JobLedger) -> None:
    jobs = [f"job-{n}" for n in range(10)]
    for job_id in jobs:
        ledger.create_job("acme", NewJob(job_id=job_id, job_type="sync"), CTX)
        ledger.record("acme", job_id, Start(), CTX)
    before = ledger.committer.sizes.transactions

    def progress(n: int) -> Written:
        return ledger.record("acme", jobs[n % 10], RecordProgress(progress=n % 101), CTX)

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(progress, range(400)))

    for job_id in jobs:
        mine = sorted(r.version for r in results if r.job.job_id == job_id)
        assert mine == list(range(3, 43)), job_id  # gap-free, none lost or doubled
        assert ledger.get_job("acme", job_id).version == 42
    positions = [r.position for r in results]
    assert len(set(positions)) == 400
    assert ledger.committer.sizes.transactions - before < 400  # some appends were shared


def test_if_match_race_has_exactly_one_winner(ledger: JobLedger) -> None:
    ledger.create_job("acme", NewJob(job_id="job-1", job_type="sync"), CTX)
    ledger.record("acme", "job-1", Start(), CTX)

    def attempt(n: int) -> Written | VersionConflict:
        try:
            return ledger.record(
                "acme", "job-1", RecordProgress(progress=n), CTX, expected_version=2
            )
        except VersionConflict as conflict:
            return conflict

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    winners = [o for o in outcomes if isinstance(o, Written)]
    assert len(winners) == 1
    assert all(o.actual == 3 for o in outcomes if isinstance(o, VersionConflict))
    assert ledger.get_job("acme", "job-1").version == 3


def test_a_failing_write_does_not_fail_its_batch_mates(ledger: JobLedger) -> None:
    ledger.create_job("acme", NewJob(job_id="dup", job_type="sync"), CTX)

    def create(n: int) -> object:
        job_id = "dup" if n % 5 == 0 else f"new-{n}"
        try:
            return ledger.create_job("acme", NewJob(job_id=job_id, job_type="sync"), CTX)
        except Exception as error:
            return error

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(create, range(100)))
    failed = [n for n, o in enumerate(outcomes) if not isinstance(o, Written)]
    assert failed == list(range(0, 100, 5))
    for n in range(100):
        if n % 5:
            assert ledger.get_job("acme", f"new-{n}").version == 1


@pytest.mark.parametrize("size", [1, 3])
def test_close_stops_the_writer(ledger: JobLedger, size: int) -> None:
    for n in range(size):
        ledger.create_job("acme", NewJob(job_id=f"j{n}", job_type="x"), CTX)
    ledger.committer.close()
    # A later write starts a new writer.
    ledger.create_job("acme", NewJob(job_id="after", job_type="x"), CTX)
    assert ledger.get_job("acme", "after").version == 1
