"""The `jobs` read model: one row per job, folded with the domain's own event `apply`.

Each batch loads the rows of the jobs it touches, rebuilds them as `Job` objects,
mutates them with the batch's events and writes `job_row(job, position)` back. The
row therefore equals a replay of the job's events by construction. Deleted jobs
leave the table and a tombstone in `deleted_jobs` (410 rather than 404).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from msgspec.structs import astuple
from psycopg.sql import SQL

from ledger.domain import Job, JobStatus, stream_id
from projections.bulk import BulkTable
from projections.rows import JobRow, job_row
from projections.tracking import (
    KEYS,
    Batch,
    BatchProjection,
    TrackedView,
    key_arrays,
    stream_keys,
    utc,
    utc_or_none,
)

if TYPE_CHECKING:
    from psycopg import Cursor
    from psycopg.rows import DictRow

log = logging.getLogger(__name__)

COLUMNS: Final = JobRow.__struct_fields__
TYPES: Final = (
    "text", "text", "text", "text", "text", "int4", "text", "int8", "int8", "int8", "int8",
    "int8", "timestamptz", "timestamptz", "int8", "timestamptz", "timestamptz", "text", "jsonb",
    "jsonb", "jsonb", "jsonb", "jsonb", "jsonb", "text", "int4", "int4", "text", "int4", "int8",
)  # fmt: skip
"""The `jobs` column types in COLUMNS order, for binary COPY."""

SELECT_JOBS: Final = SQL(f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE {KEYS}")
SELECT_TOMBSTONES: Final = SQL(f"SELECT tenant, id FROM deleted_jobs WHERE {KEYS}")
JOBS: Final = BulkTable("jobs", COLUMNS, TYPES)
DELETE_JOBS: Final = SQL(f"DELETE FROM jobs WHERE {KEYS}")
INSERT_TOMBSTONES: Final = SQL(
    "INSERT INTO deleted_jobs (tenant, id, version, position, deleted_at) "
    "SELECT * FROM unnest(%b::text[], %b::text[], %b::int[], %b::bigint[], %b::timestamptz[]) "
    "ON CONFLICT (tenant, id) DO NOTHING"
)


def row_from_record(record: DictRow) -> JobRow:
    """A JobRow from a `jobs` record, times in UTC as the events have them."""
    row = JobRow(**record)
    row.start_time = utc_or_none(row.start_time)
    row.end_time = utc_or_none(row.end_time)
    row.created_at = utc(row.created_at)
    row.updated_at = utc(row.updated_at)
    return row


def job_from_row(row: JobRow) -> Job:
    """The Job a row was written from, ready to take the job's next event."""
    job = Job.__new__(Job)
    job.__base_init__(stream_id(row.tenant, row.id), row.version, row.created_at)
    job.modified_on = row.updated_at
    job.tenant, job.job_id, job.job_type, job.name = row.tenant, row.id, row.job_type, row.name
    job.status = JobStatus(row.status)
    job.progress, job.current_step = row.progress, row.current_step
    job.records_processed, job.total_records = row.records_processed, row.total_records
    job.records_created, job.records_updated = row.records_created, row.records_updated
    job.records_deleted = row.records_deleted
    job.start_time, job.end_time = row.start_time, row.end_time
    job.error_message, job.error_details = row.error_message, row.error_details
    job.error_history, job.parameters = row.error_history, row.parameters
    job.labels, job.counters, job.result = row.labels, row.counters, row.result
    job.cancel_reason, job.created_by = row.cancel_reason, row.created_by
    job.attempt, job.max_attempts = row.attempt, row.max_attempts
    return job


def created_job(event: Job.Created) -> Job:
    """The Job `event` creates, as the library's `event.mutate(None)` builds it (Job has
    no `__init__` of its own), without matching the event's fields to signatures."""
    job = Job.__new__(Job)
    job.__base_init__(event.originator_id, event.originator_version, event.timestamp)
    event.apply(job)
    return job


def fold(jobs: dict[str, Job], gone: set[str], batch: Batch) -> dict[str, int]:
    """Mutate `jobs` (by stream id) with the batch's events; the last position of each.

    Events a job has already taken (version not above its own) and events of
    deleted jobs are skipped, so a replay changes nothing.
    """
    positions: dict[str, int] = {}
    for event, position in batch:
        if not isinstance(event, Job.Event):
            continue
        sid = event.originator_id
        job = jobs.get(sid)
        if sid in gone or (job is not None and event.originator_version <= job.version):
            continue
        if isinstance(event, Job.Created):
            jobs[sid] = created_job(event)
        elif job is None:
            log.warning("jobs: %s v%d has no row; skipped", sid, event.originator_version)
            continue
        else:
            event.mutate(job)
        positions[sid] = position
    return positions


class JobsView(TrackedView):
    """The `jobs` and `deleted_jobs` tables and the `jobs_tracking` position."""

    name = "jobs"
    tables = ("jobs", "deleted_jobs")
    query_indexes = (
        "jobs_tenant_created_at_id_idx",
        "jobs_created_at_id_tenant_idx",
        "jobs_tenant_status_created_at_id_idx",
        "jobs_tenant_job_type_created_at_id_idx",
        "jobs_tenant_start_time_idx",
    )

    def write(self, curs: Cursor[DictRow], batch: Batch) -> None:
        """Fold the batch into the rows of the jobs it touches."""
        keys = stream_keys(batch).arrays
        curs.execute(SELECT_JOBS, keys)
        jobs = {stream_id(r["tenant"], r["id"]): job_from_row(row_from_record(r)) for r in curs}
        curs.execute(SELECT_TOMBSTONES, keys)
        gone = {stream_id(r["tenant"], r["id"]) for r in curs}
        stored = set(jobs)
        positions = fold(jobs, gone, batch)
        changed = [(sid, jobs[sid], p) for sid, p in positions.items()]
        alive = [(sid, job, p) for sid, job, p in changed if job.status is not JobStatus.DELETED]
        deleted = [(job, p) for _, job, p in changed if job.status is JobStatus.DELETED]
        added = [astuple(job_row(job, p)) for sid, job, p in alive if sid not in stored]
        kept = [astuple(job_row(job, p)) for sid, job, p in alive if sid in stored]
        if added:
            JOBS.insert(curs, added)
        if kept:
            JOBS.upsert(curs, kept)
        if deleted:
            curs.execute(DELETE_JOBS, key_arrays(job.id for job, _ in deleted))
            curs.execute(
                INSERT_TOMBSTONES,
                (
                    [job.tenant for job, _ in deleted],
                    [job.job_id for job, _ in deleted],
                    [job.version for job, _ in deleted],
                    [p for _, p in deleted],
                    [job.modified_on for job, _ in deleted],
                ),
            )


class JobsProjection(BatchProjection[JobsView]):
    """Keeps `jobs`: every Job event changes its job's row; Deleted removes it."""

    name = "jobs"
