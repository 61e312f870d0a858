"""Lists and statistics as of a moment, read from the status intervals, equal what replaying
every job up to that moment gives, for seeded random lifecycles and moments."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from ledger.application import JobLedger
from ledger.domain import FINISHED, Job, JobStatus, stream_id
from ledger.errors import JobNotFound
from ledger.history import History
from ledger.settings import Settings
from projections.history import HistoryService
from projections.pump import catch_up
from projections.queries import JobQueryService
from projections.rows import JobQuery, StatsQuery
from tests.property.dated import WHO, at

JOBS = 40
MOMENTS = 25


def random_job(ledger: JobLedger, rng: random.Random, n: int) -> None:
    """A job with random event times over three days: retries, ends, maybe a deletion."""
    now = at(rng.uniform(0, 2))
    tenant = rng.choice(["acme", "globex"])
    job: Job = Job._create(
        Job.Created, id=stream_id(tenant, f"j{n}"), tenant=tenant, job_id=f"j{n}",
        job_type=rng.choice(["sync", "export"]), name=None, parameters={}, labels={},
        total_records=None, max_attempts=3, timestamp=now, **WHO,
    )  # fmt: skip
    for attempt in range(1, 4):
        if rng.random() < 0.15:
            break
        now += timedelta(minutes=rng.uniform(1, 300))
        job.trigger_event(Job.Started, attempt=attempt, timestamp=now, **WHO)
        now += timedelta(minutes=rng.uniform(1, 300))
        roll = rng.random()
        if roll < 0.2:
            break  # left running
        if roll < 0.6:
            job.trigger_event(Job.Failed, error_message="x", error_details=None, counters=None,
                              timestamp=now, **WHO)  # fmt: skip
            continue
        if roll < 0.8:
            job.trigger_event(Job.Cancelled, reason=None, timestamp=now, **WHO)
        else:
            job.trigger_event(
                Job.Succeeded, records_processed=None, records_created=None,
                records_updated=None, records_deleted=None, result=None, counters=None,
                timestamp=now, **WHO,
            )  # fmt: skip
        break
    if rng.random() < 0.2:
        job.trigger_event(Job.Deleted, timestamp=now + timedelta(minutes=5), **WHO)
    ledger.save(job)


@pytest.fixture
async def history(settings: Settings, ledger: JobLedger) -> AsyncIterator[HistoryService]:
    rng = random.Random(20261125)
    for n in range(JOBS):
        random_job(ledger, rng, n)
    catch_up(settings)
    queries = await JobQueryService.connect(settings)
    try:
        yield HistoryService(queries.pool, ledger.mapper)
    finally:
        await queries.close()


async def test_lists_and_stats_as_of_random_moments_equal_replays(
    history: HistoryService, ledger: JobLedger
) -> None:
    replayer = History(ledger)
    rng = random.Random(7)
    for _ in range(MOMENTS):
        moment = at(rng.uniform(-0.5, 4))
        replayed = _replay_all(replayer, moment)
        for tenant in ("acme", "globex", None):
            expected = sorted(
                (
                    (j.created_on, j.job_id, j.tenant)
                    for j in replayed
                    if tenant in (None, j.tenant)
                ),
                reverse=True,
            )
            page = await history.list_as_of(JobQuery(tenant=tenant, first=1000), moment)
            assert page.keys == [(t, i) for _, i, t in expected], moment

            for status in ("running", "failed", "completed"):
                query = JobQuery(tenant=tenant, status=(status,), first=1000)
                got = {key for key in (await history.list_as_of(query, moment)).keys}
                assert got == {
                    (j.tenant, j.job_id)
                    for j in replayed
                    if j.status.value == status and tenant in (None, j.tenant)
                }

            stats = await history.stats_as_of(
                StatsQuery(tenant=tenant, group_by=("status", "job_type")), moment
            )
            counts = Counter(
                (j.status.value, j.job_type) for j in replayed if tenant in (None, j.tenant)
            )
            assert {(g.status, g.job_type): g.count for g in stats.groups} == dict(counts)
            durations = {(g.status, g.job_type): g.duration_ms.max for g in stats.groups}
            for (status, job_type), longest in durations.items():
                finished = [
                    j.duration_ms for j in replayed
                    if (j.status.value, j.job_type) == (status, job_type)
                    and j.status in FINISHED and j.duration_ms is not None
                    and tenant in (None, j.tenant)
                ]  # fmt: skip
                assert longest == max(finished, default=None)


def _replay_all(replayer: History, moment: datetime) -> list[Job]:
    """Every job that existed and was not deleted at `moment`, replayed to it."""
    jobs = []
    for n in range(JOBS):
        for tenant in ("acme", "globex"):
            try:
                job = replayer.as_of(tenant, f"j{n}", moment).job
            except JobNotFound:
                continue
            if job.status is not JobStatus.DELETED:
                jobs.append(job)
    return jobs
