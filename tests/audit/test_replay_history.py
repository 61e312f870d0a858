"""ledger.history: a job replayed to a version or a moment equals the job after that
many events, as the write side saw it then."""

from __future__ import annotations

import copy

import pytest

from ledger.application import JobLedger
from ledger.commands import (
    Context,
    Delete,
    Fail,
    JobCommand,
    NewJob,
    RecordProgress,
    Start,
    Succeed,
)
from ledger.domain import Job
from ledger.errors import JobNotFound
from ledger.history import History
from projections.rows import job_row
from tests.property.dated import at, dated_job

CTX = Context(actor="tok-history", request_id="req-history")
COMMANDS: list[JobCommand] = [
    Start(),
    RecordProgress(progress=10, current_step="read", records_processed=5),
    RecordProgress(progress=60, counters={"rows": 3}),
    Fail(error_message="timeout", error_details={"after_s": 30}),
    Start(),
    RecordProgress(progress=20),
    Succeed(records_created=4, result={"ok": True}),
    Delete(),
]


def test_every_version_and_moment_replays_to_the_job_after_that_many_events(
    ledger: JobLedger,
) -> None:
    written = ledger.create_job("acme", NewJob(job_id="a", job_type="x", max_attempts=2), CTX)
    states = [(copy.copy(written.job), written.position)]
    for command in COMMANDS:
        step = ledger.record("acme", "a", command, CTX)
        states.append((copy.copy(step.job), step.position))
    history = History(ledger)
    timeline = history.timeline("acme", "a")

    for version, (job, position) in enumerate(states, start=1):
        at_version = history.at_version("acme", "a", version)
        moment = timeline[version - 1].event.timestamp
        as_of = history.as_of("acme", "a", moment)
        expected = job_row(job, position)
        assert job_row(at_version.job, at_version.position) == expected
        assert job_row(as_of.job, as_of.position) == expected
        assert timeline[version - 1].position == position


def test_a_moment_between_events_gives_the_earlier_state(ledger: JobLedger) -> None:
    dated_job(ledger, "acme", "a", created=at(0), started=at(0, 1000), ended=at(0, 3000))
    history = History(ledger)

    assert history.as_of("acme", "a", at(0, 999)).job.status.value == "pending"
    assert history.as_of("acme", "a", at(0, 1000)).job.status.value == "running"
    assert history.as_of("acme", "a", at(0, 2999)).job.version == 2
    assert history.as_of("acme", "a", at(5)).job.status.value == "completed"
    assert [s.event.originator_version for s in history.timeline("acme", "a", at(0, 2000))] == [
        1, 2,
    ]  # fmt: skip


def test_before_the_job_existed_or_past_its_last_version_it_is_not_found(
    ledger: JobLedger,
) -> None:
    dated_job(ledger, "acme", "a", created=at(0), started=at(0, 1000))
    history = History(ledger)

    with pytest.raises(JobNotFound):
        history.as_of("acme", "a", at(-1))
    with pytest.raises(JobNotFound):
        history.at_version("acme", "a", 3)
    with pytest.raises(JobNotFound):
        history.as_of("globex", "a", at(1))
    with pytest.raises(JobNotFound):
        history.timeline("acme", "nope")


def test_many_jobs_as_of_one_moment_keep_their_order(ledger: JobLedger) -> None:
    dated_job(ledger, "acme", "a", created=at(0), started=at(1))
    dated_job(ledger, "acme", "b", created=at(0, 5), started=at(0, 10), ended=at(2))

    thens = History(ledger).many_as_of([("acme", "b"), ("acme", "a")], at(1, 500))

    assert [(t.job.job_id, t.job.status.value, t.position) for t in thens] == [
        ("b", "running", 4),
        ("a", "running", 2),
    ]
    assert all(isinstance(t.job, Job) for t in thens)
