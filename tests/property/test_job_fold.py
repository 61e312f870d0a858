"""The `jobs` row fold against the domain: for any commands the domain accepts, folding
their events into a row gives, after every event, `job_row` of the job replayed by the
domain's own `mutate`. No database."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from msgspec.structs import astuple

from ledger.commands import JobCommand, execute
from ledger.domain import Job
from ledger.errors import LedgerError
from projections.job_fold import CHANGES, Row, advance, created_row
from projections.jobs import fold
from projections.rows import job_row
from projections.tracking import Positioned
from tests.property.test_projection_properties import lifecycle
from tests.property.workload import CTX

T0 = datetime(2026, 3, 1, 23, 59, 58, tzinfo=UTC)
Timed = tuple[JobCommand, int]
"""A command and the milliseconds the clock moves before it."""


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The time the domain stamps on new events (the clock is an outside edge)."""
    now = [T0]
    monkeypatch.setattr(Job.Event, "create_timestamp", staticmethod(lambda: now[0]))
    return now


@st.composite
def job_events(draw: st.DrawFn) -> tuple[int, str | None, list[Timed]]:
    """max_attempts, name, and a lifecycle's commands with the time before each."""
    commands = draw(lifecycle())
    size = len(commands)
    pauses = draw(st.lists(st.integers(0, 90_000), min_size=size, max_size=size))
    steps = list(zip(commands, pauses, strict=True))
    return draw(st.integers(1, 3)), draw(st.none() | st.just("nightly")), steps


def run(
    clock: list[datetime], max_attempts: int, name: str | None, steps: list[Timed]
) -> list[Job.Event]:
    """The events of a job created and then sent `steps` (refused commands record nothing)."""
    clock[0] = T0
    job = Job.create(
        tenant="acme", job_id="j-1", job_type="sync", name=name, parameters={"p": [1]},
        labels={"team": "x"}, total_records=None, max_attempts=max_attempts,
        actor=CTX.actor, request_id=CTX.request_id,
    )  # fmt: skip
    for command, ms in steps:
        clock[0] += timedelta(milliseconds=ms)
        with contextlib.suppress(LedgerError):
            execute(job, command, CTX)
    events = job.collect_events()
    assert all(isinstance(e, Job.Event) for e in events)
    return events  # type: ignore[return-value]


def replayed_row(events: list[Job.Event], position: int) -> Row:
    job: Job | None = None
    for event in events:
        job = event.mutate(job)
    assert job is not None
    return list(astuple(job_row(job, position)))


@hypothesis_settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(job=job_events(), cut=st.integers(0, 20))
def test_after_every_event_the_row_is_the_replayed_jobs_row(
    clock: list[datetime], job: tuple[int, str | None, list[Timed]], cut: int
) -> None:
    events = run(clock, *job)
    created = events[0]
    assert isinstance(created, Job.Created)
    row = created_row(created, 1)
    assert row == replayed_row(events[:1], 1)
    for n, event in enumerate(events[1:], start=2):
        if n == cut:
            row = list(row)  # as if written and read back between batches
        advance(row, event, n)
        assert row == replayed_row(events[:n], n)


@hypothesis_settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(job=job_events(), split=st.integers(1, 20))
def test_a_fold_in_two_batches_replaying_the_first_equals_the_replay(
    clock: list[datetime], job: tuple[int, str | None, list[Timed]], split: int
) -> None:
    events = run(clock, *job)
    batch = [Positioned(e, n) for n, e in enumerate(events, start=1)]
    rows: dict[str, Row] = {}
    fold(rows, set(), batch[:split])
    fold(rows, set(), batch)  # the first part again: skipped by version
    assert rows == {"acme/j-1": replayed_row(events, len(events))}


def test_every_event_class_of_a_job_has_a_row_change() -> None:
    # A new event class would still be folded (through the domain's mutate), but slowly.
    events = {c for c in vars(Job).values() if isinstance(c, type) and issubclass(c, Job.Event)}
    assert events - {Job.Event, Job.Created} == set(CHANGES)
