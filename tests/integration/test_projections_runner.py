"""The runner on real PostgreSQL: exactly-once across restarts, keeping up, polling."""

from __future__ import annotations

import threading
from time import monotonic, sleep

import pytest
from eventsourcing.persistence import Tracking
from psycopg import Cursor
from psycopg.rows import DictRow

from ledger.application import JobLedger
from ledger.commands import JobCommand, NewJob, RecordProgress, Start, Succeed
from ledger.settings import Settings
from projections.pump import Pump, catch_up, rebuild
from projections.runner import ProjectionsRunner
from projections.tracking import Batch, Positioned
from tests.property.replay import assert_projections_match_replay, connect
from tests.property.workload import CTX, write_backlog

WAIT = 30.0


def test_restart_part_way_through_a_backlog_projects_each_event_once(
    settings: Settings, ledger: JobLedger
) -> None:
    head = write_backlog(ledger, jobs=120)
    assert head > 400
    first = ProjectionsRunner(settings, batch_size=5)
    first.start()
    assert first.wait(head // 3, WAIT)
    first.stop()  # most likely mid-backlog; more events follow either way
    stopped_at = first.positions
    assert head // 3 <= min(stopped_at.values())
    head = write_backlog(ledger, jobs=40, seed=8)
    assert min(stopped_at.values()) < head

    with ProjectionsRunner(settings, batch_size=37) as second:
        assert second.wait(head, WAIT)
        assert second.positions == dict.fromkeys(
            ("jobs", "running_jobs", "job_stats", "job_status_intervals"), head
        )
    assert_projections_match_replay(settings, ledger)


def test_a_batch_that_fails_half_way_leaves_no_trace(settings: Settings, ledger: JobLedger) -> None:
    write_backlog(ledger, jobs=20)
    pump = Pump(settings, batch_size=25)
    try:
        pump.step()
        view = pump.projections[0].view
        before = view.position()
        with connect(settings) as conn:
            rows_before = conn.execute("SELECT count(*) AS n FROM jobs").fetchone()
        notifications = pump.recorder.select_notifications(start=before + 1, limit=10)
        batch = [Positioned(pump.app.mapper.to_domain_event(n), n.id) for n in notifications]

        def crash(curs: Cursor[DictRow], batch: Batch) -> None:
            curs.execute("DELETE FROM jobs")
            raise RuntimeError("the process died mid-batch")

        with pytest.raises(RuntimeError):
            view.commit_batch(batch, Tracking("ledger", notifications[-1].id), crash)
        assert view.position() == before
        with connect(settings) as conn:
            assert conn.execute("SELECT count(*) AS n FROM jobs").fetchone() == rows_before
        pump.catch_up()
    finally:
        pump.close()
    assert_projections_match_replay(settings, ledger)


def test_runner_keeps_up_with_writes_made_while_it_runs(
    settings: Settings, ledger: JobLedger
) -> None:
    with ProjectionsRunner(settings) as runner:
        for round_ in range(5):
            head = write_backlog(ledger, jobs=10, seed=round_)
            assert runner.wait(head, WAIT)
    assert_projections_match_replay(settings, ledger)


def test_without_notifications_the_poll_finds_new_events(
    settings: Settings, ledger: JobLedger
) -> None:
    with ProjectionsRunner(settings, listen=False) as runner:
        position = ledger.create_job("acme", NewJob(job_id="j-1", job_type="sync"), CTX).position
        assert runner.wait(position, WAIT)
        position = ledger.record("acme", "j-1", Start(), CTX).position
        assert runner.wait(position, WAIT)


def test_a_dropped_connection_is_reopened(settings: Settings, ledger: JobLedger) -> None:
    with ProjectionsRunner(settings) as runner:
        position = ledger.create_job("acme", NewJob(job_id="j-1", job_type="sync"), CTX).position
        assert runner.wait(position, WAIT)
        with connect(settings) as conn:
            killed = conn.execute(
                "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity "
                "WHERE application_name = %s",
                (f"ledger-projections:{settings.database_schema}"[:63],),
            ).fetchall()
        assert killed
        position = ledger.record("acme", "j-1", Start(), CTX).position
        assert runner.wait(position, WAIT)


def test_only_one_runner_projects_and_another_takes_over(
    settings: Settings, ledger: JobLedger
) -> None:
    head = write_backlog(ledger, jobs=10)
    with ProjectionsRunner(settings) as first:
        assert first.wait(head, WAIT)
        second = ProjectionsRunner(settings)
        second.start()
        try:
            assert second.wait(head, WAIT)  # a follower still sees the positions
            assert first.is_leader and not second.is_leader
            first.stop()
            head = write_backlog(ledger, jobs=5, seed=99)
            assert second.wait(head, WAIT)
            assert second.is_leader
        finally:
            second.stop()
    assert_projections_match_replay(settings, ledger)


def test_rebuild_equals_the_live_rows(settings: Settings, ledger: JobLedger) -> None:
    head = write_backlog(ledger, jobs=40)
    assert min(catch_up(settings).values()) == head
    assert_projections_match_replay(settings, ledger)
    assert min(rebuild(settings).values()) == head
    assert_projections_match_replay(settings, ledger)


def test_two_pumps_taking_turns_each_see_the_rows_the_other_wrote(
    settings: Settings, ledger: JobLedger
) -> None:
    # Jobs move in rounds, so each has events in many batches, written by both pumps.
    jobs = [f"j-{n}" for n in range(20)]
    for job_id in jobs:
        ledger.create_job("acme", NewJob(job_id=job_id, job_type="sync"), CTX)
    rounds: list[JobCommand] = [Start(), *(RecordProgress(progress=p) for p in (10, 50, 90))]
    for command in [*rounds, Succeed()]:
        for job_id in jobs:
            head = ledger.record("acme", job_id, command, CTX).position
    first, second = Pump(settings, batch_size=7), Pump(settings, batch_size=11)
    try:
        while first.step() + second.step():
            first.positions = second.positions = {}  # each reads where the other got to
        assert min(first.load_positions().values()) == head
    finally:
        first.close()
        second.close()
    assert_projections_match_replay(settings, ledger)


def test_a_migration_meanwhile_waits_for_a_stats_batch_rather_than_deadlocking(
    settings: Settings, ledger: JobLedger
) -> None:
    # `ledger migrate` (run by every command that opens the database) takes a share
    # lock on job_stats, then on job_stats_jobs, as 012_job_stats.sql creates their
    # indexes. A stats batch must take the two in the same order.
    head = write_backlog(ledger, jobs=10)
    pump = Pump(settings)
    failures: list[BaseException] = []

    def project() -> None:
        try:
            pump.catch_up()
        except BaseException as error:
            failures.append(error)

    try:
        with connect(settings) as migration, migration.transaction():
            migration.execute("SET LOCAL lock_timeout = '10s'")
            migration.execute("CREATE INDEX IF NOT EXISTS job_stats_day_idx ON job_stats (day)")
            projecting = threading.Thread(target=project)
            projecting.start()
            _wait_for_a_lock_wait(settings, "job_stats")
            migration.execute(
                "CREATE INDEX IF NOT EXISTS job_stats_jobs_bucket_duration_idx "
                "ON job_stats_jobs (tenant, job_type, status, day, duration_ms)"
            )
        projecting.join(WAIT)
        assert not failures
        assert min(pump.load_positions().values()) == head
    finally:
        pump.close()
    assert_projections_match_replay(settings, ledger)


def _wait_for_a_lock_wait(settings: Settings, table: str) -> None:
    """Until some session waits for a lock on `table`."""
    deadline = monotonic() + WAIT
    with connect(settings) as conn:
        while monotonic() < deadline:
            waiting = conn.execute(
                "SELECT 1 FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
                (table,),
            ).fetchone()
            if waiting:
                return
            sleep(0.01)
    raise AssertionError(f"no one waited for {table}")
