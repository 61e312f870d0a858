"""Each projection's effect on its rows, event type by event type, and replays."""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing.persistence import Tracking

from ledger.application import JobLedger
from ledger.commands import (
    Cancel,
    Delete,
    Fail,
    JobCommand,
    NewJob,
    RecordProgress,
    Start,
    Succeed,
)
from ledger.settings import Settings
from projections.job_fold import job_from_row
from projections.pump import Pump
from projections.rows import job_row
from projections.tracking import Positioned
from tests.property.dated import at, dated_job
from tests.property.replay import (
    assert_projections_match_replay,
    connect,
    expected_rows,
    projected_rows,
    replayed_jobs,
)
from tests.property.workload import CTX, write_backlog

MODEL_TABLES = (
    "jobs", "deleted_jobs", "running_jobs", "job_stats", "job_stats_jobs", "job_status_intervals"
)


@pytest.fixture
def pump(settings: Settings) -> Any:
    pump = Pump(settings, batch_size=7)
    yield pump
    pump.close()


def tables(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Every read-model row, in a stable order."""
    with connect(settings) as conn:
        return {
            t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in MODEL_TABLES
        }


def one(settings: Settings, sql: str, *params: object) -> dict[str, Any] | None:
    with connect(settings) as conn:
        return conn.execute(sql, params).fetchone()


def drive(ledger: JobLedger, *commands: JobCommand, max_attempts: int = 1) -> None:
    ledger.create_job("acme", NewJob(job_id="j", job_type="sync", max_attempts=max_attempts), CTX)
    for command in commands:
        ledger.record("acme", "j", command, CTX)


def job(settings: Settings) -> dict[str, Any] | None:
    return one(settings, "SELECT * FROM jobs WHERE tenant = 'acme' AND id = 'j'")


def running(settings: Settings) -> dict[str, Any] | None:
    return one(settings, "SELECT * FROM running_jobs WHERE tenant = 'acme' AND id = 'j'")


def buckets(settings: Settings) -> dict[str, tuple[int, int | None, int | None]]:
    with connect(settings) as conn:
        rows = conn.execute("SELECT * FROM job_stats WHERE tenant = 'acme'").fetchall()
    return {r["status"]: (r["count"], r["duration_min"], r["duration_max"]) for r in rows}


def test_created_makes_a_pending_row_everywhere(
    settings: Settings, ledger: JobLedger, pump: Pump
) -> None:
    drive(ledger)
    pump.catch_up()
    row = job(settings)
    assert row is not None
    assert (row["status"], row["version"], row["progress"], row["attempt"]) == ("pending", 1, 0, 0)
    assert running(settings) is not None  # kept aside (not running), for a later start
    assert buckets(settings) == {"pending": (1, None, None)}


def test_started_and_progressed_update_the_job_and_the_running_set(
    settings: Settings, ledger: JobLedger, pump: Pump
) -> None:
    drive(ledger, Start(), RecordProgress(progress=30, current_step="copy", records_processed=9))
    pump.catch_up()
    row, active = job(settings), running(settings)
    assert row is not None and active is not None
    assert (row["status"], row["progress"], row["records_processed"]) == ("running", 30, 9)
    assert row["start_time"] is not None
    assert (active["status"], active["progress"], active["current_step"]) == (
        "running", 30, "copy",
    )  # fmt: skip
    assert active["start_time"] == row["start_time"]
    assert buckets(settings) == {"running": (1, None, None)}


@pytest.mark.parametrize(
    ("end", "status"),
    [(Succeed(records_created=3), "completed"), (Fail(error_message="x"), "failed"),
     (Cancel(reason="r"), "cancelled")],
)  # fmt: skip
def test_an_end_leaves_the_running_set_and_counts_its_duration(
    settings: Settings, ledger: JobLedger, pump: Pump, end: JobCommand, status: str
) -> None:
    drive(ledger, Start(), end)
    pump.catch_up()
    row = job(settings)
    assert row is not None
    assert row["status"] == status
    assert running(settings) is None
    ((count, low, high),) = buckets(settings).values()
    assert (count, low, high) == (1, row["duration_ms"], row["duration_ms"])
    assert_projections_match_replay(settings, ledger)


def test_a_retry_moves_the_job_back_and_recomputes_the_failed_bucket(
    settings: Settings, ledger: JobLedger, pump: Pump
) -> None:
    dated_job(ledger, "acme", "slow", created=at(0), started=at(0), ended=at(0, ms=900),
              outcome="failed", max_attempts=2)  # fmt: skip
    dated_job(ledger, "acme", "quick", created=at(0), started=at(0), ended=at(0, ms=100),
              outcome="failed")  # fmt: skip
    pump.catch_up()
    assert buckets(settings) == {"failed": (2, 100, 900)}
    assert one(settings, "SELECT status FROM running_jobs WHERE id = 'slow'") == {
        "status": "failed"  # attempts left: kept for the retry
    }
    assert one(settings, "SELECT 1 FROM running_jobs WHERE id = 'quick'") is None
    ledger.record("acme", "slow", Start(), CTX)
    pump.catch_up()
    assert buckets(settings) == {"failed": (1, 100, 100), "running": (1, None, None)}
    row = one(settings, "SELECT * FROM jobs WHERE id = 'slow'")
    assert row is not None
    assert (row["attempt"], row["error_message"], len(row["error_history"])) == (2, None, 1)
    active = one(settings, "SELECT * FROM running_jobs WHERE id = 'slow'")
    assert active is not None and (active["status"], active["progress"]) == ("running", 0)
    assert_projections_match_replay(settings, ledger)


def test_deleted_removes_the_job_leaves_a_tombstone_and_leaves_the_stats(
    settings: Settings, ledger: JobLedger, pump: Pump
) -> None:
    dated_job(ledger, "acme", "a", created=at(0), started=at(0), ended=at(0, ms=5))
    dated_job(ledger, "acme", "b", created=at(0), started=at(0), ended=at(0, ms=50))
    pump.catch_up()
    assert buckets(settings) == {"completed": (2, 5, 50)}
    ledger.record("acme", "b", Delete(), CTX)
    pump.catch_up()
    assert buckets(settings) == {"completed": (1, 5, 5)}
    assert one(settings, "SELECT 1 FROM jobs WHERE id = 'b'") is None
    tomb = one(settings, "SELECT version FROM deleted_jobs WHERE id = 'b'")
    assert tomb == {"version": 4}  # created, started, succeeded, deleted
    ledger.record("acme", "a", Delete(), CTX)
    pump.catch_up()
    assert buckets(settings) == {}  # empty buckets go
    assert one(settings, "SELECT count(*) AS n FROM job_stats_jobs") == {"n": 0}


def test_processing_the_same_events_again_changes_nothing(
    settings: Settings, ledger: JobLedger, pump: Pump
) -> None:
    head = write_backlog(ledger, jobs=30)
    pump.catch_up()
    before = tables(settings)
    notifications = pump.recorder.select_notifications(start=1, limit=head)
    batch = [Positioned(pump.app.mapper.to_domain_event(n), n.id) for n in notifications]
    for projection in pump.projections:
        projection.process_batch(batch, Tracking("ledger", head))
        projection.process_batch(batch[:50], Tracking("ledger", batch[49].position))
        for event, position in batch[-20:]:  # the library's per-event entry point
            projection.process_event(event, Tracking("ledger", position))  # type: ignore[attr-defined]
    assert tables(settings) == before
    assert pump.load_positions() == dict.fromkeys(
        ("jobs", "running_jobs", "job_stats", "job_status_intervals"), head
    )


def test_jobs_rows_survive_a_replay_without_tracking(
    settings: Settings, ledger: JobLedger, pump: Pump
) -> None:
    write_backlog(ledger, jobs=30)
    pump.catch_up()
    before = tables(settings)["jobs"], tables(settings)["deleted_jobs"]
    with connect(settings) as conn:  # forget the position, keep the rows
        conn.execute("DELETE FROM jobs_tracking WHERE application_name = 'ledger'")
    pump.load_positions()
    pump.catch_up()
    # Version guards and tombstones make the replayed events no-ops.
    assert (tables(settings)["jobs"], tables(settings)["deleted_jobs"]) == before
    assert projected_rows(settings) == expected_rows(replayed_jobs(settings, ledger))


def test_events_the_projections_ignore_still_advance_tracking(
    settings: Settings, ledger: JobLedger, pump: Pump
) -> None:
    drive(ledger, Start())
    pump.catch_up()
    view = pump.projections[0].view
    head = view.position()
    pump.projections[0].process_batch(
        [Positioned(object(), head + 1)], Tracking("ledger", head + 1)
    )
    assert view.position() == head + 1


def test_a_retry_restarts_the_running_row_from_zero(
    settings: Settings, ledger: JobLedger, pump: Pump
) -> None:
    drive(
        ledger, Start(), RecordProgress(progress=40, current_step="copy"), Fail(error_message="x"),
        Start(), max_attempts=2,
    )  # fmt: skip
    pump.catch_up()
    row, active = job(settings), running(settings)
    assert row is not None and active is not None
    assert (active["status"], active["progress"], active["current_step"]) == ("running", 0, None)
    assert (active["attempt"], active["start_time"]) == (2, row["start_time"])
    assert_projections_match_replay(settings, ledger)


def test_a_row_holds_all_of_a_jobs_state(settings: Settings, ledger: JobLedger) -> None:
    # The jobs projection folds events into Jobs rebuilt from rows: a Job attribute
    # that JobRow does not keep would be lost, and this test names it.
    drive(ledger, Start(), RecordProgress(progress=5, counters={"a": 1}), Fail(error_message="x"),
          Start(), max_attempts=2)  # fmt: skip
    original = ledger.repository.get("acme/j")
    rebuilt = job_from_row(job_row(original, 1))
    state = {k: v for k, v in vars(original).items() if k != "_pending_events"}
    assert {k: v for k, v in vars(rebuilt).items() if k != "_pending_events"} == state
