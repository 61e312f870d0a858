"""The status-interval projection: one interval per status a job has been in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ledger.application import JobLedger
from ledger.domain import Job, stream_id
from ledger.settings import Settings
from projections.intervals import Interval, fold
from projections.pump import Pump, catch_up
from projections.tracking import Positioned
from tests.property.dated import WHO, at, dated_job
from tests.property.replay import connect


def retried_job() -> list[Positioned]:
    """A job that fails, is retried, succeeds and is deleted: its events, positioned."""
    job: Job = Job._create(
        Job.Created, id=stream_id("acme", "a"), tenant="acme", job_id="a", job_type="sync",
        name=None, parameters={}, labels={}, total_records=None, max_attempts=2,
        timestamp=at(0), **WHO,
    )  # fmt: skip
    job.trigger_event(Job.Started, attempt=1, timestamp=at(0, 1000), **WHO)
    job.trigger_event(
        Job.Progressed, progress=50, current_step=None, records_processed=None,
        total_records=None, records_created=None, records_updated=None, records_deleted=None,
        counters=None, timestamp=at(0, 1500), **WHO,
    )  # fmt: skip
    job.trigger_event(
        Job.Failed, error_message="x", error_details=None, counters=None,
        timestamp=at(0, 2000), **WHO,
    )  # fmt: skip
    job.trigger_event(Job.Started, attempt=2, timestamp=at(0, 3000), **WHO)
    job.trigger_event(
        Job.Succeeded, records_processed=None, records_created=None, records_updated=None,
        records_deleted=None, result=None, counters=None, timestamp=at(0, 7000), **WHO,
    )  # fmt: skip
    job.trigger_event(Job.Deleted, timestamp=at(1), **WHO)
    return [Positioned(e, n) for n, e in enumerate(job.collect_events(), start=1)]


def spans(intervals: list[Interval]) -> list[tuple[Any, ...]]:
    return [
        (i.version, i.status, i.valid_from, i.valid_to, i.start_time, i.duration_ms)
        for i in intervals
    ]


EXPECTED = [
    (1, "pending", at(0), at(0, 1000), None, None),
    (2, "running", at(0, 1000), at(0, 2000), at(0, 1000), None),
    (4, "failed", at(0, 2000), at(0, 3000), at(0, 1000), 1000),
    (5, "running", at(0, 3000), at(0, 7000), at(0, 1000), None),  # first start kept
    (6, "completed", at(0, 7000), at(1), at(0, 1000), 6000),
    (7, "deleted", at(1), None, at(0, 1000), None),
]


def test_each_status_change_closes_one_interval_and_opens_the_next() -> None:
    open_intervals: dict[str, Interval] = {}

    changes = fold(open_intervals, retried_job())

    assert changes.closed == []
    assert spans(list(changes.opened.values())) == EXPECTED
    assert open_intervals["acme/a"].status == "deleted"


def test_events_in_several_batches_give_the_same_intervals_and_a_replay_changes_nothing() -> None:
    events = retried_job()
    open_intervals: dict[str, Interval] = {}
    first = fold(open_intervals, events[:3])
    second = fold(open_intervals, events[3:])
    again = fold(open_intervals, events)

    assert spans(list(first.opened.values())) == [
        (1, "pending", at(0), at(0, 1000), None, None),
        (2, "running", at(0, 1000), at(0, 2000), at(0, 1000), None),
    ]
    assert [i.version for i in second.closed] == [2]  # stored before, closed now
    assert spans(list(second.opened.values())) == EXPECTED[2:]
    assert again.opened == {} and again.closed == []


def test_the_projected_table_holds_the_intervals(settings: Settings, ledger: JobLedger) -> None:
    dated_job(
        ledger, "acme", "a", created=at(0), started=at(0, 1000), ended=at(0, 4000),
        outcome="failed",
    )  # fmt: skip
    dated_job(ledger, "acme", "b", created=at(1))
    pump = Pump(settings, batch_size=2)  # the failure arrives in a later batch than the start
    try:
        pump.catch_up()
    finally:
        pump.close()
    catch_up(settings)

    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT id, version, status, valid_from, valid_to, start_time, duration_ms "
            "FROM job_status_intervals ORDER BY id, version"
        ).fetchall()
    assert [tuple(_utc(v) for v in r.values()) for r in rows] == [
        ("a", 1, "pending", at(0), at(0, 1000), None, None),
        ("a", 2, "running", at(0, 1000), at(0, 4000), at(0, 1000), None),
        ("a", 3, "failed", at(0, 4000), None, at(0, 1000), 3000),
        ("b", 1, "pending", at(1), None, None, None),
    ]


def _utc(value: Any) -> Any:
    return value.astimezone(at(0).tzinfo) if isinstance(value, datetime) else value
