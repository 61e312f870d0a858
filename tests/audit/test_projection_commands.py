"""`ledger projections status`, `ledger projections rebuild` and `ledger replay` as real
processes, on the test's database."""

from __future__ import annotations

import asyncio
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from ledger.application import JobLedger
from ledger.settings import Settings
from ledger.verify import verify
from projections.check import row_checks
from projections.pump import catch_up
from projections.rebuild import shadow_schema
from tests.api.helpers import Client, Headers
from tests.audit.conftest import Commands
from tests.property.dated import at, dated_job
from tests.property.replay import assert_projections_match_replay, connect
from tests.property.workload import write_backlog

MODELS = ("jobs", "running_jobs", "job_stats", "job_status_intervals")


@contextmanager
def writing(ledger: JobLedger) -> Iterator[list[int]]:
    """Jobs written in a thread until the block ends; yields the batches' last positions."""
    stop = threading.Event()
    written: list[int] = []

    def keep_writing() -> None:
        seed = 1000
        while not stop.is_set():
            written.append(write_backlog(ledger, jobs=3, seed=seed))
            seed += 1

    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        yield written
    finally:
        stop.set()
        thread.join()


def status_table(out: str) -> dict[str, list[str]]:
    lines = out.splitlines()
    assert lines[0].split() == ["PROJECTION", "POSITION", "HEAD", "LAG_EVENTS", "LAG_SECONDS"]
    return {line.split()[0]: line.split()[1:] for line in lines[1:]}


def test_status_shows_each_projection_position_head_and_lag(
    settings: Settings, ledger: JobLedger, cli: Commands
) -> None:
    dated_job(ledger, "acme", "old", created=at(0), started=at(0, 500))
    catch_up(settings)
    projected = 2
    head = write_backlog(ledger, jobs=10)

    behind = status_table(cli.check("projections", "status"))
    catch_up(settings)
    caught_up = status_table(cli.check("projections", "status"))

    assert set(behind) == set(MODELS)
    for name in MODELS:
        position, shown_head, lag_events, lag_seconds = behind[name]
        assert (int(position), int(shown_head), int(lag_events)) == (
            projected,
            head,
            head - projected,
        )
        # The oldest unprojected event was written moments ago.
        assert 0 <= float(lag_seconds) < 60
        assert caught_up[name] == [str(head), str(head), "0", "0.0"]


def test_status_lag_in_seconds_is_the_age_of_the_oldest_unprojected_event(
    settings: Settings, ledger: JobLedger, cli: Commands
) -> None:
    dated_job(ledger, "acme", "old", created=datetime.now(UTC) - timedelta(hours=1))

    behind = status_table(cli.check("projections", "status"))

    assert all(3590 < float(row[3]) < 3700 for row in behind.values()), behind


async def test_rebuild_under_writes_swaps_in_rows_equal_to_a_replay_while_reads_go_on(
    settings: Settings,
    ledger: JobLedger,
    cli: Commands,
    client: Client,
    token_for: Callable[[str | None, str], Headers],
) -> None:
    reader = token_for("acme", "reader")
    await asyncio.to_thread(write_backlog, ledger, jobs=150)
    seen: list[int] = []
    with writing(ledger) as written:
        rebuild = cli.popen("projections", "rebuild")
        while rebuild.poll() is None:
            response = await client.get("/api/v1/jobs?first=200", headers=reader)
            assert response.status_code == 200, response.text
            seen.append(int(response.headers["x-ledger-position"]))
            await asyncio.sleep(0.02)
        out = rebuild.stdout.read() if rebuild.stdout else ""
        assert rebuild.returncode == 0, out
        await asyncio.sleep(0.2)  # a few more writes after the swaps
    head = written[-1]

    response = await client.get(f"/api/v1/jobs?min_position={head}", headers=reader)
    assert response.status_code == 200

    for name in MODELS:
        assert re.search(rf"rebuilt {name}: \d+ events in [\d.]+ s .* swapped in at position", out)
    assert len(seen) > 3 and seen == sorted(seen), seen  # never went back in time
    await asyncio.to_thread(assert_projections_match_replay, settings, ledger)
    report = await asyncio.to_thread(verify, settings, ledger.mapper, row_checks())
    assert report.problems == []
    assert not _schemas_like(settings, "_rebuild_")


def test_a_rebuild_killed_before_its_swap_leaves_the_live_model_and_the_next_starts_clean(
    settings: Settings, ledger: JobLedger, cli: Commands
) -> None:
    head = write_backlog(ledger, jobs=60)
    catch_up(settings)
    shadow = shadow_schema(settings.database_schema, "jobs")
    before = _rows(settings, "jobs")
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url) as blocker:
        # A reader in the middle of a transaction on `jobs`: the swap must wait for it.
        blocker.execute(
            sql.SQL("SELECT count(*) FROM {}.jobs").format(sql.Identifier(settings.database_schema))
        )
        rebuild = cli.popen("projections", "rebuild", "jobs")
        _wait_for(lambda: _shadow_position(settings, shadow) == head)
        time.sleep(0.2)
        rebuild.send_signal(signal.SIGKILL)
        rebuild.wait()
        blocker.rollback()

    assert _rows(settings, "jobs") == before  # the live table still serves, untouched
    assert _schemas_like(settings, shadow) == [shadow]  # the half-built copy is left
    again = cli.check("projections", "rebuild", "jobs")

    assert f"rebuilt jobs: {head} events" in again
    assert not _schemas_like(settings, "_rebuild_")
    assert _rows(settings, "jobs") == before
    assert_projections_match_replay(settings, ledger)


def test_a_second_rebuild_of_the_same_model_is_refused_while_one_runs(
    settings: Settings, ledger: JobLedger, cli: Commands
) -> None:
    write_backlog(ledger, jobs=20)
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as holder:
        holder.execute(
            "SELECT pg_advisory_lock(%s, hashtext(%s))",
            (0x1ED6E4, f"{settings.database_schema}/job_stats"),
        )
        done = cli.run("projections", "rebuild", "job_stats")

    assert done.returncode == 1
    assert "a rebuild of job_stats is already running" in done.stderr


def test_an_unknown_projection_is_refused(cli: Commands) -> None:
    done = cli.run("projections", "rebuild", "nope")

    assert done.returncode == 1
    assert "no projection 'nope'; choose from jobs, running_jobs, job_stats" in done.stderr


def test_replay_prints_the_timeline_and_stops_at_as_of(ledger: JobLedger, cli: Commands) -> None:
    dated_job(
        ledger, "acme", "a", created=at(0), started=at(0, 1000), ended=at(0, 5000),
        outcome="failed",
    )  # fmt: skip

    whole = cli.check("replay", "acme/a").splitlines()
    until = cli.check("replay", "a", "--tenant", "acme", "--as-of", at(0, 2000).isoformat())

    assert whole[0].split() == [
        "VERSION", "POSITION", "OCCURRED_AT", "EVENT", "ACTOR", "STATUS", "PROGRESS", "DETAIL",
    ]  # fmt: skip
    assert [line.split()[:7] for line in whole[1:4]] == [
        ["1", "1", "2026-03-01T09:00:00.000Z", "created", "tok-test", "pending", "0"],
        ["2", "2", "2026-03-01T09:00:01.000Z", "started", "tok-test", "running", "0"],
        ["3", "3", "2026-03-01T09:00:05.000Z", "failed", "tok-test", "failed", "0"],
    ]
    assert whole[-1] == "acme/a: failed, version 3, progress 0, attempt 1/1"
    assert len(until.splitlines()) == 4
    assert until.splitlines()[-1] == (
        "acme/a as of 2026-03-01T09:00:02.000Z: running, version 2, progress 0, attempt 1/1"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("replay", "acme/nope"), "job nope not found"),
        (("replay", "a"), "name the job's tenant"),
        (("replay", "acme/a", "--as-of", "2026-02-01T00:00:00Z"), "job a not found"),
    ],
)
def test_replay_of_no_such_job_fails(
    ledger: JobLedger, cli: Commands, args: tuple[str, ...], message: str
) -> None:
    dated_job(ledger, "acme", "a", created=at(0))

    done = cli.run(*args)

    assert done.returncode == 1
    assert message in done.stderr


# -- helpers --------------------------------------------------------------------------------


def _rows(settings: Settings, table: str) -> list[dict[str, object]]:
    with connect(settings) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY tenant, id").fetchall()


def _schemas_like(settings: Settings, fragment: str) -> list[str]:
    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE strpos(nspname, %s) > 0 "
            "AND starts_with(nspname, %s)",
            (fragment, settings.database_schema),
        ).fetchall()
    return [r["nspname"] for r in rows]


def _shadow_position(settings: Settings, shadow: str) -> int:
    with connect(settings) as conn:
        try:
            row = conn.execute(
                sql.SQL(
                    "SELECT notification_id FROM {}.jobs_tracking WHERE application_name = 'ledger'"
                ).format(sql.Identifier(shadow))
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
    return int(row["notification_id"]) if row else 0


def _wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
