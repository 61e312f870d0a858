"""JobQueryService on real PostgreSQL, over read models kept by the real projections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import msgspec
import pytest

from api.schemas import RunningJob, iso, to_job
from ledger.application import JobLedger
from ledger.commands import Cancel, Delete, NewJob, RecordProgress, Start
from ledger.errors import InvalidCommand, JobGone, JobNotFound
from ledger.migrate import migrate
from ledger.settings import Settings
from projections.cursors import Cursor, encode_cursor
from projections.pump import catch_up
from projections.queries import JobQueryService
from projections.rows import JobQuery, StatsQuery
from projections.runner import ProjectionsRunner
from projections.views import job_body
from tests.integration.pages import list_page
from tests.property.dated import at, dated_job
from tests.property.replay import connect, expected_rows, projected_rows, replayed_jobs
from tests.property.workload import CTX


async def running_set(
    queries: JobQueryService, tenant: str | None, limit: int = 1000
) -> list[RunningJob]:
    return msgspec.json.decode(await queries.running_jobs(tenant, limit), type=list[RunningJob])


@pytest.fixture
async def queries(settings: Settings) -> AsyncIterator[JobQueryService]:
    service = await JobQueryService.connect(settings)
    yield service
    await service.close()


def new(ledger: JobLedger, tenant: str, job_id: str, job_type: str = "sync") -> int:
    return ledger.create_job(tenant, NewJob(job_id=job_id, job_type=job_type), CTX).position


async def test_get_job_answers_the_row_then_gone_after_delete(
    settings: Settings, ledger: JobLedger, queries: JobQueryService
) -> None:
    new(ledger, "acme", "j-1")
    ledger.record("acme", "j-1", Start(), CTX)
    ledger.record("acme", "j-1", RecordProgress(progress=40, current_step="copy"), CTX)
    catch_up(settings)
    row = await queries.get_job("acme", "j-1")
    assert row == expected_rows(replayed_jobs(settings, ledger))[("acme", "j-1")]
    assert (row.status, row.progress, row.current_step, row.version) == ("running", 40, "copy", 3)
    assert await queries.get_job_body("acme", "j-1") == (job_body(row), 3)
    for read in (queries.get_job, queries.get_job_body):
        with pytest.raises(JobNotFound):
            await read("acme", "never")
        with pytest.raises(JobNotFound):
            await read("globex", "j-1")  # another tenant's job is unknown here
    ledger.record("acme", "j-1", Cancel(), CTX)
    ledger.record("acme", "j-1", Delete(), CTX)
    catch_up(settings)
    for read in (queries.get_job, queries.get_job_body):
        with pytest.raises(JobGone):
            await read("acme", "j-1")


async def test_list_filters_by_type_status_and_tenant(
    settings: Settings, ledger: JobLedger, queries: JobQueryService
) -> None:
    for n in range(6):
        new(ledger, "acme", f"a-{n}", "sync" if n % 2 else "export")
        new(ledger, "globex", f"g-{n}", "sync")
    for n in (0, 1, 2):
        ledger.record("acme", f"a-{n}", Start(), CTX)
    catch_up(settings)

    async def ids(**filters: object) -> list[str]:
        page = await list_page(queries, JobQuery(first=100, **filters))  # type: ignore[arg-type]
        return [j.id for j in page.jobs]

    assert await ids(tenant="acme") == [f"a-{n}" for n in reversed(range(6))]
    assert await ids(tenant="acme", job_type=("sync",)) == ["a-5", "a-3", "a-1"]
    assert await ids(tenant="acme", status=("running",)) == ["a-2", "a-1", "a-0"]
    assert await ids(tenant="acme", status=("running",), job_type=("export",)) == ["a-2", "a-0"]
    assert await ids(tenant="acme", status=("pending", "running"), job_type=("nope",)) == []
    assert set(await ids(tenant="globex")) == {f"g-{n}" for n in range(6)}
    assert len(await ids(tenant=None)) == 12
    assert len(await ids(tenant=None, job_type=("sync",))) == 9


async def test_dates_select_by_start_time_and_leave_out_unstarted_jobs(
    settings: Settings, ledger: JobLedger, queries: JobQueryService
) -> None:
    dated_job(ledger, "acme", "early", created=at(0), started=at(1))
    dated_job(ledger, "acme", "exact", created=at(0), started=at(2))
    dated_job(ledger, "acme", "late", created=at(0), started=at(3), ended=at(3, ms=500))
    dated_job(ledger, "acme", "unstarted", created=at(4))
    catch_up(settings)

    async def ids(**dates: object) -> set[str]:
        page = await list_page(queries, JobQuery(tenant="acme", **dates))  # type: ignore[arg-type]
        return {j.id for j in page.jobs}

    assert await ids() == {"early", "exact", "late", "unstarted"}
    assert await ids(start_date=at(2)) == {"exact", "late"}  # inclusive
    assert await ids(end_date=at(2)) == {"early"}  # exclusive
    assert await ids(start_date=at(1), end_date=at(3)) == {"early", "exact"}
    assert await ids(start_date=at(9)) == set()


async def test_pages_miss_and_repeat_nothing_while_jobs_are_added(
    settings: Settings, ledger: JobLedger, queries: JobQueryService
) -> None:
    for n in range(25):
        new(ledger, "acme", f"j-{n:02}")
    new(ledger, "globex", "other")
    catch_up(settings)
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = await list_page(queries, JobQuery(tenant="acme", first=7, after=after))
        seen += [j.id for j in page.jobs]
        pages += 1
        new(ledger, "acme", f"late-{pages}")  # newer than every page already served
        catch_up(settings)
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert pages == 4
    assert seen == [f"j-{n:02}" for n in reversed(range(25))]


async def test_pages_across_every_tenant_keep_the_order(
    settings: Settings, ledger: JobLedger, queries: JobQueryService
) -> None:
    for n in range(10):
        new(ledger, "acme", f"j-{n}")
        new(ledger, "globex", f"j-{n}")  # the same ids in another tenant
    catch_up(settings)
    seen: list[tuple[str, str]] = []
    after = None
    while True:
        page = await list_page(queries, JobQuery(tenant=None, first=3, after=after))
        seen += [(j.tenant, j.id) for j in page.jobs]
        if not page.has_next_page:
            break
        after = page.end_cursor
    rows = projected_rows(settings)
    assert sorted(seen) == sorted(rows)
    ordered = sorted(rows.values(), key=lambda r: (r.created_at, r.id, r.tenant), reverse=True)
    assert seen == [(r.tenant, r.id) for r in ordered]


@pytest.mark.parametrize(
    "cursor",
    ["", "not-a-cursor", "!!!!", "é", encode_cursor(Cursor(at(0), "j", "acme"))[:-3], "A" * 2000],
)
async def test_a_bad_cursor_is_refused_as_after(queries: JobQueryService, cursor: str) -> None:
    with pytest.raises(InvalidCommand) as refused:
        await list_page(queries, JobQuery(tenant="acme", after=cursor))
    assert refused.value.field == "after"


async def test_listed_jobs_are_the_api_jobs_of_their_rows(
    settings: Settings, ledger: JobLedger, queries: JobQueryService
) -> None:
    # The list serves each job's body, written by the projection; each must equal the API's
    # job built from the job's row as it stands, to the millisecond.
    last_us = timedelta(microseconds=999_999)
    dated_job(ledger, "acme", "dated", created=at(0) + last_us, started=at(1) + last_us,
              ended=at(2, ms=1) + timedelta(microseconds=500), outcome="failed")  # fmt: skip
    dated_job(ledger, "acme", "early", created=at(0, ms=5), started=at(0))
    new(ledger, "acme", "live")
    ledger.record("acme", "live", Start(), CTX)
    ledger.record("acme", "live", RecordProgress(progress=7, current_step="copy"), CTX)
    new(ledger, "acme", "pending")
    new(ledger, "globex", "theirs")
    catch_up(settings)
    page = await list_page(queries, JobQuery(tenant=None))
    assert len(page.jobs) == 5
    for job in page.jobs:
        assert job == to_job(await queries.get_job(job.tenant, job.id))
    running = {r.id: r for r in await running_set(queries, "acme")}
    assert set(running) == {"early", "live"}
    for job_id, run in running.items():
        job = to_job(await queries.get_job("acme", job_id))
        assert run == RunningJob(job.id, job.job_type, job.status, job.progress, job.start_time)


async def test_a_page_renders_bodies_not_yet_written_and_never_serves_a_stale_one(
    settings: Settings, ledger: JobLedger, queries: JobQueryService
) -> None:
    for n in range(4):
        new(ledger, "acme", f"j-{n}")
    ledger.record("acme", "j-1", Start(), CTX)
    catch_up(settings)
    served = await list_page(queries, JobQuery(tenant="acme"))
    with connect(settings) as conn:
        # A row an older release wrote: no body.
        conn.execute("UPDATE jobs SET body = NULL, body_version = NULL WHERE id = 'j-0'")
        # A row an older release moved on without a new body: its body is of the version before.
        conn.execute(
            "UPDATE jobs SET progress = 5, version = version + 1, position = position + 100"
            " WHERE id = 'j-1'"
        )
        stale = conn.execute(
            "SELECT id FROM jobs WHERE body_version IS DISTINCT FROM version ORDER BY id"
        ).fetchall()
    assert [r["id"] for r in stale] == ["j-0", "j-1"]
    page = await list_page(queries, JobQuery(tenant="acme", first=3))
    rows = projected_rows(settings)
    assert page.jobs == [to_job(rows["acme", f"j-{n}"]) for n in (3, 2, 1)]
    assert page.jobs[2].progress == 5
    # A job read serves the same: rendered from its row where its body is not the row's.
    for n in range(4):
        row = rows["acme", f"j-{n}"]
        assert await queries.get_job_body("acme", f"j-{n}") == (job_body(row), row.version)
    assert (await list_page(queries, JobQuery(tenant="acme"))).jobs[3] == served.jobs[3]


def test_migrate_gives_an_older_jobs_table_its_bodies_columns(
    settings: Settings, ledger: JobLedger
) -> None:
    new(ledger, "acme", "old")
    catch_up(settings)
    with connect(settings) as conn:
        conn.execute("ALTER TABLE jobs DROP COLUMN body, DROP COLUMN body_version")
    migrate(settings)
    migrate(settings)  # again: nothing to do
    with connect(settings) as conn:
        assert conn.execute("SELECT body, body_version FROM jobs").fetchall() == [
            {"body": None, "body_version": None}
        ]
    ledger.record("acme", "old", Start(), CTX)
    catch_up(settings)
    with connect(settings) as conn:
        stored = conn.execute("SELECT body, body_version FROM jobs").fetchone()
    row = projected_rows(settings)["acme", "old"]
    assert stored == {"body": job_body(row), "body_version": 2}


async def test_running_set_is_per_tenant_and_newest_start_first(
    settings: Settings, ledger: JobLedger, queries: JobQueryService
) -> None:
    dated_job(ledger, "acme", "first", created=at(0), started=at(0, ms=10))
    dated_job(ledger, "acme", "second", created=at(0), started=at(0, ms=20))
    dated_job(ledger, "acme", "done", created=at(0), started=at(0, ms=5), ended=at(1))
    dated_job(ledger, "acme", "pending", created=at(0))
    dated_job(ledger, "globex", "theirs", created=at(0), started=at(0, ms=30))
    catch_up(settings)
    assert [r.id for r in await running_set(queries, "acme")] == ["second", "first"]
    every = await running_set(queries, None)
    assert [r.id for r in every] == ["theirs", "second", "first"]
    assert [r.id for r in await running_set(queries, "acme", limit=1)] == ["second"]
    (row,) = await running_set(queries, "globex")
    assert (row.status, row.job_type, row.progress, row.start_time) == (
        "running", "sync", 0, iso(at(0, ms=30)),
    )  # fmt: skip


async def test_the_running_set_writes_out_bodies_not_written_for_their_row(
    settings: Settings, ledger: JobLedger, queries: JobQueryService
) -> None:
    for n in range(3):
        dated_job(ledger, "acme", f"r-{n}", created=at(0), started=at(0, ms=n))
    ledger.record("acme", "r-1", RecordProgress(progress=30, current_step="copy"), CTX)
    dated_job(ledger, "acme", "waiting", created=at(0))  # kept, not listed: no body
    catch_up(settings)
    served = await queries.running_jobs("acme")
    with connect(settings) as conn:
        waiting = conn.execute(
            "SELECT body, body_version FROM running_jobs WHERE id = 'waiting'"
        ).fetchone()
        stored = conn.execute(
            "SELECT id, body, body_version = version AS fresh FROM running_jobs"
            " WHERE status = 'running' ORDER BY id"
        ).fetchall()
        # A row an older release wrote: no body. One it moved on without a new body.
        conn.execute("UPDATE running_jobs SET body = NULL, body_version = NULL WHERE id = 'r-0'")
        conn.execute(
            "UPDATE running_jobs SET progress = 60, version = version + 1 WHERE id = 'r-1'"
        )
    assert waiting == {"body": None, "body_version": None}
    assert all(row["fresh"] for row in stored)
    # Each job is its stored body, joined: the bytes msgspec writes for the set.
    expected = [RunningJob(f"r-{n}", "sync", "running", 0, iso(at(0, ms=n))) for n in (2, 1, 0)]
    expected[1].progress = 30
    assert served == msgspec.json.encode(expected)
    assert [r["body"] for r in stored] == [msgspec.json.encode(job) for job in expected[::-1]]
    # Written out by PostgreSQL where the row has no body of its version, to the byte.
    expected[1].progress = 60
    assert await queries.running_jobs("acme") == msgspec.json.encode(expected)


async def test_stats_group_and_select_days(
    settings: Settings, ledger: JobLedger, queries: JobQueryService
) -> None:
    dated_job(ledger, "acme", "a", created=at(0), started=at(0), ended=at(0, ms=100))
    dated_job(ledger, "acme", "b", created=at(0), started=at(0), ended=at(0, ms=300))
    dated_job(ledger, "acme", "c", created=at(1), started=at(1), ended=at(1, ms=50),
              outcome="failed")  # fmt: skip
    dated_job(ledger, "acme", "d", created=at(1), job_type="export")
    dated_job(ledger, "acme", "e", created=at(2), ended=at(2), outcome="cancelled")
    dated_job(ledger, "globex", "x", created=at(0), started=at(0), ended=at(0, ms=7))
    catch_up(settings)

    result = await queries.stats(StatsQuery(tenant="acme", group_by=("status",)))
    assert result.total == 5
    by_status = {g.status: g for g in result.groups}
    assert {s: g.count for s, g in by_status.items()} == {
        "completed": 2, "failed": 1, "pending": 1, "cancelled": 1,
    }  # fmt: skip
    completed = by_status["completed"].duration_ms
    assert (completed.avg, completed.min, completed.max) == (200.0, 100, 300)
    assert by_status["cancelled"].duration_ms.avg is None  # never started: no duration

    by_day = await queries.stats(StatsQuery(tenant="acme", group_by=("day", "job_type")))
    assert [(g.day, g.job_type, g.count) for g in by_day.groups] == [
        ("2026-03-01", "sync", 2), ("2026-03-02", "export", 1), ("2026-03-02", "sync", 1),
        ("2026-03-03", "sync", 1),
    ]  # fmt: skip
    assert by_day.groups[0].status is None  # only the keys grouped by are set

    second_day = await queries.stats(
        StatsQuery(tenant="acme", group_by=(), start_date=at(1), end_date=at(1, ms=1))
    )
    assert second_day.total == 2
    to_midnight = await queries.stats(
        StatsQuery(tenant="acme", group_by=("status",), end_date=at(1).replace(hour=0))
    )
    assert to_midnight.total == 2  # an exclusive end at midnight leaves that day out

    everyone = await queries.stats(StatsQuery(tenant=None, group_by=("tenant",)))
    assert [(g.tenant, g.count) for g in everyone.groups] == [("acme", 5), ("globex", 1)]
    with pytest.raises(InvalidCommand) as refused:
        await queries.stats(StatsQuery(tenant="acme", group_by=("colour",)))
    assert refused.value.field == "group_by"


async def test_position_head_and_waiting_for_a_position(
    settings: Settings, ledger: JobLedger, queries: JobQueryService
) -> None:
    assert (await queries.position(), await queries.head()) == (0, 0)
    position = new(ledger, "acme", "j-1")
    assert await queries.head() == position
    assert await queries.wait_for_position(position, timeout=0.05) is False
    catch_up(settings)
    assert await queries.position() == position
    assert await queries.wait_for_position(position, timeout=0.05) is True


async def test_a_recent_position_is_shared_until_it_is_too_old(
    settings: Settings, ledger: JobLedger, queries: JobQueryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("projections.queries.RECENT", 60.0)
    first = new(ledger, "acme", "j-1")
    catch_up(settings)
    assert await queries.recent_position() == first
    second = new(ledger, "acme", "j-2")
    catch_up(settings)
    assert await queries.recent_position() == first  # still a lower bound of what reads see
    monkeypatch.setattr("projections.queries.RECENT", 0.0)
    assert await queries.recent_position() == second


async def test_waiting_wakes_when_the_runner_catches_up(
    settings: Settings, ledger: JobLedger, queries: JobQueryService
) -> None:
    with ProjectionsRunner(settings):
        for n in range(5):
            position = new(ledger, "acme", f"j-{n}")
            assert await queries.wait_for_position(position, timeout=5.0)
            assert (await queries.get_job("acme", f"j-{n}")).position == position


async def test_stats_never_read_the_jobs_table(
    settings: Settings, ledger: JobLedger, queries: JobQueryService
) -> None:
    dated_job(ledger, "acme", "a", created=at(0), started=at(0), ended=at(0, ms=10))
    catch_up(settings)
    with connect(settings) as conn, conn.transaction():
        conn.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")  # any read of jobs would wait
        result = await asyncio.wait_for(
            queries.stats(StatsQuery(tenant=None, group_by=("status", "job_type", "day"))), 5
        )
    assert result.total == 1


@pytest.mark.parametrize("first", [0, -1, 1001])
async def test_a_page_size_out_of_range_is_refused(queries: JobQueryService, first: int) -> None:
    with pytest.raises(InvalidCommand) as refused:
        await list_page(queries, JobQuery(tenant="acme", first=first))
    assert refused.value.field == "first"
