"""JobLedger against real PostgreSQL: appends, conflicts, idempotent answers."""

from __future__ import annotations

import pytest

from ledger.application import JobLedger, Written
from ledger.commands import Context, Delete, NewJob, RecordProgress, Start, Succeed
from ledger.domain import JobStatus
from ledger.errors import (
    IdempotencyKeyReused,
    InvalidTransition,
    JobAlreadyExists,
    JobGone,
    JobNotFound,
    VersionConflict,
)
from ledger.idempotency import Answer, IdempotencyKey

CTX = Context(actor="tok-test", request_id="req-1")


def test_create_then_start_appends_in_global_order(ledger: JobLedger) -> None:
    created = ledger.create_job("acme", NewJob(job_id="job-1", job_type="full_sync"), CTX)
    started = ledger.record("acme", "job-1", Start(), CTX)
    assert (created.version, started.version) == (1, 2)
    assert started.position > created.position
    assert ledger.get_job("acme", "job-1").status is JobStatus.RUNNING


def test_same_id_in_two_tenants_are_two_jobs(ledger: JobLedger) -> None:
    ledger.create_job("acme", NewJob(job_id="job-1", job_type="a"), CTX)
    ledger.create_job("globex", NewJob(job_id="job-1", job_type="b"), CTX)
    assert ledger.get_job("globex", "job-1").job_type == "b"
    with pytest.raises(JobAlreadyExists):
        ledger.create_job("acme", NewJob(job_id="job-1", job_type="c"), CTX)


def test_unknown_and_deleted_jobs(ledger: JobLedger) -> None:
    with pytest.raises(JobNotFound):
        ledger.record("acme", "nope", Start(), CTX)
    ledger.create_job("acme", NewJob(job_id="job-1", job_type="a"), CTX)
    ledger.record("acme", "job-1", Delete(), CTX)
    with pytest.raises(JobGone):
        ledger.get_job("acme", "job-1")


def test_expected_version_mismatch_writes_nothing(ledger: JobLedger) -> None:
    ledger.create_job("acme", NewJob(job_id="job-1", job_type="a"), CTX)
    with pytest.raises(VersionConflict) as refused:
        ledger.record("acme", "job-1", Start(), CTX, expected_version=7)
    assert (refused.value.expected, refused.value.actual) == (7, 1)
    assert ledger.get_job("acme", "job-1").version == 1


def test_batch_appends_valid_items_and_reports_each(ledger: JobLedger) -> None:
    ledger.create_job("acme", NewJob(job_id="job-1", job_type="a"), CTX)
    results = ledger.record_batch(
        "acme",
        [
            ("job-1", Start()),
            ("job-2", Start()),
            ("job-1", RecordProgress(progress=5)),
            ("job-1", Start()),
            ("job-1", Succeed()),
        ],
        CTX,
    )
    kinds = [type(r) for r in results]
    assert kinds == [Written, JobNotFound, Written, InvalidTransition, Written]
    written = [r for r in results if isinstance(r, Written)]
    assert [w.version for w in written] == [2, 3, 4]
    assert [w.job.status for w in written] == [
        JobStatus.RUNNING,
        JobStatus.RUNNING,
        JobStatus.COMPLETED,
    ]
    assert written[0].position < written[1].position < written[2].position


def test_answer_is_stored_with_the_events(ledger: JobLedger) -> None:
    key = IdempotencyKey.of("acme", "k-1", "POST", "/api/v1/jobs", b"{}")
    written = ledger.create_job(
        "acme",
        NewJob(job_id="job-1", job_type="a"),
        CTX,
        answer=(key, lambda outcomes: Answer(201, str(outcomes[0].position).encode())),  # type: ignore[union-attr]
    )
    assert ledger.answers.find(key) == Answer(201, str(written.position).encode())
    other = IdempotencyKey.of("acme", "k-1", "POST", "/api/v1/jobs", b'{"x":1}')
    with pytest.raises(IdempotencyKeyReused):
        ledger.answers.find(other)
    # Keys are per tenant.
    elsewhere = IdempotencyKey.of("globex", "k-1", "POST", "/api/v1/jobs", b"{}")
    assert ledger.answers.find(elsewhere) is None


def test_failed_answer_rolls_back_the_events(ledger: JobLedger) -> None:
    key = IdempotencyKey.of("acme", "k-2", "POST", "/x", b"")

    def broken(_: object) -> Answer:
        raise RuntimeError("render failed")

    with pytest.raises(RuntimeError):
        ledger.create_job("acme", NewJob(job_id="job-1", job_type="a"), CTX, answer=(key, broken))
    with pytest.raises(JobNotFound):
        ledger.get_job("acme", "job-1")
    assert ledger.answers.find(key) is None
