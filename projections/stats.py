"""`job_stats`: counts and durations by tenant x job_type x status x creation day.

Each job counts in one bucket. The projection keeps where it counts in its own
table (`job_stats_jobs`); a batch moves jobs between buckets by decrementing the
old bucket and incrementing the new one. min/max cannot be decremented, so a
bucket a duration left has them recomputed from `job_stats_jobs`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import singledispatch
from typing import TYPE_CHECKING, Final

import msgspec
from psycopg.sql import SQL

from ledger.domain import FINISHED, Job, JobStatus, millis_between, stream_id
from projections.bulk import BulkTable
from projections.tracking import (
    KEYS,
    Batch,
    BatchProjection,
    ByClass,
    TrackedView,
    key_arrays,
    select_by_keys,
    stream_keys,
    utc_or_none,
)

if TYPE_CHECKING:
    from psycopg import Cursor
    from psycopg.rows import DictRow

Bucket = tuple[str, str, str, date]
"""(tenant, job_type, status, day)."""


class Counted(msgspec.Struct, frozen=True):
    """Where one job counts: a `job_stats_jobs` row."""

    tenant: str
    id: str
    job_type: str
    status: str
    day: date
    start_time: datetime | None
    duration_ms: int | None
    version: int

    @property
    def bucket(self) -> Bucket:
        return (self.tenant, self.job_type, self.status, self.day)


@dataclass(slots=True)
class Delta:
    """The change a batch makes to one bucket."""

    count: int = 0
    duration_count: int = 0
    duration_sum: int = 0
    added_min: int | None = None
    added_max: int | None = None
    lost_duration: bool = False


COLUMNS: Final = Counted.__struct_fields__
TYPES: Final = ("text", "text", "text", "text", "date", "timestamptz", "int8", "int4")
"""The `job_stats_jobs` column types in COLUMNS order, for binary COPY."""
SELECT_COUNTED: Final = select_by_keys("job_stats_jobs", COLUMNS)
STATS_JOBS: Final = BulkTable("job_stats_jobs", COLUMNS, TYPES)
DELETE_COUNTED: Final = SQL(f"DELETE FROM job_stats_jobs WHERE {KEYS}")
BUCKET_ARRAYS: Final = "%b::text[], %b::text[], %b::text[], %b::date[]"
ADD_TO_BUCKETS: Final = SQL(
    "INSERT INTO job_stats AS s (tenant, job_type, status, day, count, duration_count, "
    "duration_sum, duration_min, duration_max) "
    f"SELECT * FROM unnest({BUCKET_ARRAYS}, %b::bigint[], %b::bigint[], %b::bigint[], "
    "%b::bigint[], %b::bigint[]) "
    "ON CONFLICT (tenant, job_type, status, day) DO UPDATE SET "
    "count = s.count + EXCLUDED.count, "
    "duration_count = s.duration_count + EXCLUDED.duration_count, "
    "duration_sum = s.duration_sum + EXCLUDED.duration_sum, "
    "duration_min = least(s.duration_min, EXCLUDED.duration_min), "
    "duration_max = greatest(s.duration_max, EXCLUDED.duration_max)"
)
RECOMPUTE_MIN_MAX: Final = SQL(
    "UPDATE job_stats s SET "
    "duration_min = (SELECT min(j.duration_ms) FROM job_stats_jobs j WHERE "
    "j.tenant = s.tenant AND j.job_type = s.job_type AND j.status = s.status AND j.day = s.day), "
    "duration_max = (SELECT max(j.duration_ms) FROM job_stats_jobs j WHERE "
    "j.tenant = s.tenant AND j.job_type = s.job_type AND j.status = s.status AND j.day = s.day) "
    f"WHERE (s.tenant, s.job_type, s.status, s.day) IN (SELECT * FROM unnest({BUCKET_ARRAYS}))"
)
DELETE_EMPTY_BUCKETS: Final = SQL(
    "DELETE FROM job_stats WHERE count = 0 AND "
    f"(tenant, job_type, status, day) IN (SELECT * FROM unnest({BUCKET_ARRAYS}))"
)


@singledispatch
def apply(event: Job.Event, job: Counted | None) -> Counted | None:
    """Where the job counts after `event`; None once deleted."""
    return None if job is None else msgspec.structs.replace(job, version=event.originator_version)


@apply.register
def _(event: Job.Created, job: Counted | None) -> Counted | None:
    return Counted(
        tenant=event.tenant,
        id=event.job_id,
        job_type=event.job_type,
        status=JobStatus.PENDING.value,
        day=event.timestamp.astimezone(UTC).date(),
        start_time=None,
        duration_ms=None,
        version=event.originator_version,
    )


@apply.register
def _(event: Job.Started, job: Counted | None) -> Counted | None:
    if job is None:
        return None
    return msgspec.structs.replace(
        job,
        status=JobStatus.RUNNING.value,
        start_time=job.start_time or event.timestamp,  # the first start, as Job keeps it
        duration_ms=None,
        version=event.originator_version,
    )


@apply.register(Job.Succeeded)
@apply.register(Job.Failed)
@apply.register(Job.Cancelled)
def _(event: Job.Event, job: Counted | None) -> Counted | None:
    if job is None:
        return None
    status = {Job.Succeeded: JobStatus.COMPLETED, Job.Failed: JobStatus.FAILED}.get(
        type(event), JobStatus.CANCELLED
    )
    assert status in FINISHED
    duration = None if job.start_time is None else millis_between(job.start_time, event.timestamp)
    return msgspec.structs.replace(
        job, status=status.value, duration_ms=duration, version=event.originator_version
    )


@apply.register
def _(event: Job.Deleted, job: Counted | None) -> Counted | None:
    return None


APPLY: Final = ByClass(apply.dispatch)


def fold(jobs: dict[str, Counted], batch: Batch) -> dict[Bucket, Delta]:
    """Apply the batch to `jobs` (by stream id; deleted ones dropped) and return the
    change to each bucket it touched."""
    deltas: defaultdict[Bucket, Delta] = defaultdict(Delta)
    for event, _ in batch:
        if not isinstance(event, Job.Event):
            continue
        sid = event.originator_id
        old = jobs.get(sid)
        if old is not None and event.originator_version <= old.version:
            continue  # already applied
        new = APPLY[type(event)](event, old)
        if old is not None and new is not None and _counts_alike(old, new):
            jobs[sid] = new  # in the same bucket with the same duration (progress, say)
            continue
        if old is not None:
            _count(deltas[old.bucket], old, -1)
            jobs.pop(sid)
        if new is not None:
            _count(deltas[new.bucket], new, +1)
            jobs[sid] = new
    return dict(deltas)


def _counts_alike(old: Counted, new: Counted) -> bool:
    return old.duration_ms == new.duration_ms and old.bucket == new.bucket


def _count(delta: Delta, job: Counted, sign: int) -> None:
    delta.count += sign
    if job.duration_ms is None:
        return
    delta.duration_count += sign
    delta.duration_sum += sign * job.duration_ms
    if sign < 0:
        delta.lost_duration = True
    else:
        d = job.duration_ms
        delta.added_min = d if delta.added_min is None else min(d, delta.added_min)
        delta.added_max = d if delta.added_max is None else max(d, delta.added_max)


class StatsView(TrackedView):
    """`job_stats`, `job_stats_jobs` and the `job_stats_tracking` position."""

    name = "job_stats"
    tables = ("job_stats", "job_stats_jobs")
    query_indexes = ("job_stats_tenant_day_idx", "job_stats_day_idx")

    def write(self, curs: Cursor[DictRow], batch: Batch) -> None:
        """Move the batch's jobs between buckets."""
        keys = stream_keys(batch)
        curs.execute(SELECT_COUNTED, keys.arrays)
        jobs = {stream_id(r["tenant"], r["id"]): _from_record(r) for r in curs}
        before = set(jobs)
        deltas = fold(jobs, batch)
        added = [jobs[sid] for sid in keys.streams if sid in jobs and sid not in before]
        kept = [jobs[sid] for sid in keys.streams if sid in jobs and sid in before]
        removed = [sid for sid in before if sid not in jobs]
        buckets = list(deltas)
        # job_stats is written before job_stats_jobs, the order in which the schema file
        # locks them: a migration running meanwhile waits rather than deadlocks.
        if buckets:
            curs.execute(
                ADD_TO_BUCKETS,
                (
                    *_bucket_arrays(buckets),
                    [deltas[b].count for b in buckets],
                    [deltas[b].duration_count for b in buckets],
                    [deltas[b].duration_sum for b in buckets],
                    [deltas[b].added_min for b in buckets],
                    [deltas[b].added_max for b in buckets],
                ),
            )
        if added:
            STATS_JOBS.insert(curs, map(msgspec.structs.astuple, added))
        if kept:
            STATS_JOBS.upsert(curs, map(msgspec.structs.astuple, kept))
        if removed:
            curs.execute(DELETE_COUNTED, key_arrays(removed))
        if not buckets:
            return
        # min and max of the buckets a duration left, from job_stats_jobs as it now is.
        lost = [b for b in buckets if deltas[b].lost_duration]
        if lost:
            curs.execute(RECOMPUTE_MIN_MAX, _bucket_arrays(lost))
        curs.execute(DELETE_EMPTY_BUCKETS, _bucket_arrays(buckets))


class StatsProjection(BatchProjection[StatsView]):
    """Keeps `job_stats`: each job counts once, in the bucket of its current status."""

    name = "job_stats"


def _from_record(record: DictRow) -> Counted:
    values = dict(record)
    values["start_time"] = utc_or_none(values["start_time"])
    return Counted(**values)


def _bucket_arrays(buckets: list[Bucket]) -> tuple[list[str], list[str], list[str], list[date]]:
    return (
        [b[0] for b in buckets],
        [b[1] for b in buckets],
        [b[2] for b in buckets],
        [b[3] for b in buckets],
    )
