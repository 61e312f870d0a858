"""Lists by several statuses or job types: read one value at a time, merged in list order."""

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

OUTCOMES = ("pending", "running", "succeeded", "failed", "cancelled")
STATUS = {"succeeded": "completed"}
TYPES = ("sync", "export", "audit")


def jobs() -> list[tuple[str, str, str, datetime, str]]:
    """(tenant, id, job type, created, status) of 30 jobs a tenant, created a minute apart."""
    return [
        (tenant, f"j-{n:02d}", TYPES[n % 3], at(0) + timedelta(minutes=n), OUTCOMES[n * 7 % 5])
        for tenant in ("acme", "globex")
        for n in range(30)
    ]


@pytest.fixture
async def queries(settings: Settings, ledger: JobLedger) -> AsyncIterator[JobQueryService]:
    for tenant, job_id, job_type, created, outcome in jobs():
        started = None if outcome == "pending" else created + timedelta(seconds=1)
        ended = None if outcome in ("pending", "running") else created + timedelta(seconds=2)
        dated_job(
            ledger, tenant, job_id, job_type=job_type, created=created, started=started,
            ended=ended, outcome=outcome if ended else "succeeded",
        )  # fmt: skip
    catch_up(settings)
    service = await JobQueryService.connect(settings)
    yield service
    await service.close()


def expected(query: JobQuery) -> list[str]:
    rows = [
        (created, job_id, tenant)
        for tenant, job_id, job_type, created, outcome in jobs()
        if query.tenant in (None, tenant)
        and (not query.job_type or job_type in query.job_type)
        and (not query.status or STATUS.get(outcome, outcome) in query.status)
        and (query.start_date is None or (outcome != "pending" and created >= query.start_date))
    ]
    return [f"{tenant}/{job_id}" for _, job_id, tenant in sorted(rows, reverse=True)]


@pytest.mark.parametrize(
    "filters",
    [
        {"status": ("running", "pending")},
        {"status": ("cancelled", "failed", "completed")},
        {"status": ("running", "running")},
        {"status": ("completed", "nonesuch")},
        {"job_type": ("audit", "sync")},
        {"job_type": ("export", "export", "nonesuch")},
        {"job_type": ("audit", "export"), "status": ("pending", "failed")},
        {"job_type": ("sync",), "status": ("running", "cancelled")},
        {"status": ("running", "completed"), "start_date": at(0) + timedelta(minutes=10)},
    ],
)
@pytest.mark.parametrize("tenant", ["acme", None])
@pytest.mark.parametrize("first", [1, 4, 100])
async def test_pages_by_several_values_hold_exactly_the_jobs_that_match(
    queries: JobQueryService, filters: dict[str, object], tenant: str | None, first: int
) -> None:
    query = JobQuery(tenant=tenant, first=first, **filters)  # type: ignore[arg-type]
    assert await every_page(queries, query) == expected(query)
