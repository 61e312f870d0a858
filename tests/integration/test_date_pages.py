"""Lists by start date are exact, whatever the wait before a start and however clocks disagree.

The query walks the creation order only near the dates and takes the jobs that waited
long, or were stamped as started before they were created, from indexes of their own
(projections/listing.py); these tests page through every such case.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from ledger.application import JobLedger
from ledger.settings import Settings
from projections.pump import catch_up
from projections.queries import JobQueryService
from projections.rows import JobQuery
from tests.integration.pages import every_page
from tests.property.dated import at, dated_job

HOUR = timedelta(hours=1)
# (id, created, started): a wait of seconds, about an hour, days; clocks a little behind.
JOBS = [
    ("prompt", at(0), at(0, ms=900)),
    ("prompt-later", at(1), at(1, ms=20)),
    ("waited-59m", at(0), at(0) + HOUR - timedelta(minutes=1)),
    ("waited-61m", at(0), at(0) + HOUR + timedelta(minutes=1)),
    ("waited-days", at(-3), at(1, ms=10)),
    ("clock-behind", at(2), at(2) - timedelta(milliseconds=50)),
    ("clock-far-behind", at(2, ms=1), at(0)),
    ("never-started", at(1), None),
]
DATES: list[tuple[datetime | None, datetime | None]] = [
    (None, None),
    (at(0), None),
    (at(0, ms=901), None),
    (at(1), None),
    (at(1, ms=10), None),
    (at(2), None),
    (at(3), None),
    (None, at(0)),
    (None, at(1)),
    (None, at(2)),
    (None, at(2) - timedelta(milliseconds=50)),
    (at(0), at(1)),
    (at(0, ms=900), at(0, ms=901)),
    (at(0) + HOUR, at(2)),
    (at(-5), at(5)),
    (at(2), at(1)),
]


@pytest.fixture
async def queries(settings: Settings, ledger: JobLedger) -> AsyncIterator[JobQueryService]:
    for tenant in ("acme", "globex"):
        for job_id, created, started in JOBS:
            dated_job(ledger, tenant, job_id, created=created, started=started)
    catch_up(settings)
    service = await JobQueryService.connect(settings)
    yield service
    await service.close()


def expected(tenants: list[str], start: datetime | None, end: datetime | None) -> list[str]:
    """Tenant/id of the matching jobs, newest created first (id, then tenant, break ties)."""
    rows = [
        (created, job_id, tenant)
        for tenant in tenants
        for job_id, created, started in JOBS
        if (start is None and end is None)
        or (
            started is not None
            and (start is None or started >= start)
            and (end is None or started < end)
        )
    ]
    return [f"{tenant}/{job_id}" for _, job_id, tenant in sorted(rows, reverse=True)]


@pytest.mark.parametrize(("start", "end"), DATES)
@pytest.mark.parametrize("first", [1, 2, 50])
async def test_pages_by_start_date_hold_exactly_the_jobs_started_then(
    queries: JobQueryService, start: datetime | None, end: datetime | None, first: int
) -> None:
    for tenant, tenants in (("acme", ["acme"]), (None, ["acme", "globex"])):
        query = JobQuery(tenant=tenant, start_date=start, end_date=end, first=first)
        assert await every_page(queries, query) == expected(tenants, start, end)


async def test_a_status_filter_combines_with_dates(queries: JobQueryService) -> None:
    query = JobQuery(tenant="acme", status=("completed",), start_date=at(0), end_date=at(5))
    assert await every_page(queries, query) == []
    query = JobQuery(tenant="acme", status=("running",), start_date=at(0), end_date=at(5))
    assert await every_page(queries, query) == expected(["acme"], at(0), at(5))


async def test_a_tenants_page_by_date_is_planned_once_not_at_each_read(
    queries: JobQueryService,
) -> None:
    query = JobQuery(tenant="acme", start_date=at(0), first=2)
    pages = [await every_page(queries, query) for _ in range(4)]
    assert pages == [expected(["acme"], at(0), None)] * 4
    async with queries.pages.acquire() as conn:
        plans = await conn.fetch(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE '%FROM jobs%' AND statement NOT LIKE '%pg_prepared%'"
        )
    # The first page's statement and the next pages' each ran one plan, made once.
    assert sorted((p["generic_plans"], p["custom_plans"]) for p in plans) == [(4, 0), (12, 0)]
