"""The `jobs` read model: one row per job, folded with the domain's own event `apply`.

Each batch loads the rows of the jobs it touches, rebuilds them as `Job` objects,
mutates them with the batch's events and writes `job_row(job, position)` back. The
row therefore equals a replay of the job's events by construction. Deleted jobs
leave the table and a tombstone in `deleted_jobs` (410 rather than 404).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import msgspec
from eventsourcing.persistence import Tracking
from psycopg.sql import SQL
from psycopg.types.json import Jsonb

from ledger.domain import Job, JobStatus, stream_id
from projections.rows import JobRow, job_row
from projections.tracking import (
    Batch,
    BatchProjection,
    TrackedView,
    key_arrays,
    utc,
    utc_or_none,
)

if TYPE_CHECKING:
    from psycopg import Cursor
    from psycopg.rows import DictRow

log = logging.getLogger(__name__)

COLUMNS: Final = JobRow.__struct_fields__
JSON_COLUMNS: Final = frozenset(
    {"error_details", "error_history", "parameters", "labels", "counters", "result"}
)
KEYS: Final = "(tenant, id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"

SELECT_JOBS: Final = SQL(f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE {KEYS}")
SELECT_TOMBSTONES: Final = SQL(f"SELECT tenant, id FROM deleted_jobs WHERE {KEYS}")
UPSERT_JOB: Final = SQL(
    f"INSERT INTO jobs ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
    f"ON CONFLICT (tenant, id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c not in ("tenant", "id"))
    # A replay of older events never overwrites a newer row.
    + " WHERE jobs.version < EXCLUDED.version"
)
DELETE_JOBS: Final = SQL(f"DELETE FROM jobs WHERE {KEYS}")
INSERT_TOMBSTONES: Final = SQL(
    "INSERT INTO deleted_jobs (tenant, id, version, position, deleted_at) "
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::int[], %s::bigint[], %s::timestamptz[]) "
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
            created = event.mutate(None)
            assert isinstance(created, Job)
            jobs[sid] = created
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

    def update(self, batch: Batch, tracking: Tracking) -> None:
        """Fold the batch into the rows of the jobs it touches, with its tracking."""
        self.commit_batch(batch, tracking, self._write)

    def _write(self, curs: Cursor[DictRow], batch: Batch) -> None:
        keys = key_arrays(
            {e.event.originator_id for e in batch if isinstance(e.event, Job.Event)}
        )
        curs.execute(SELECT_JOBS, keys)
        jobs = {stream_id(r["tenant"], r["id"]): job_from_row(row_from_record(r)) for r in curs}
        curs.execute(SELECT_TOMBSTONES, keys)
        gone = {stream_id(r["tenant"], r["id"]) for r in curs}
        positions = fold(jobs, gone, batch)
        changed = [(jobs[sid], p) for sid, p in positions.items()]
        alive = [job_row(job, p) for job, p in changed if job.status is not JobStatus.DELETED]
        deleted = [(job, p) for job, p in changed if job.status is JobStatus.DELETED]
        if alive:
            curs.executemany(UPSERT_JOB, [_params(row) for row in alive])
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

    def process_batch(self, batch: Batch, tracking: Tracking) -> None:
        self.view.update(batch, tracking)


def _params(row: JobRow) -> Sequence[object]:
    values = msgspec.structs.astuple(row)
    return [
        Jsonb(v) if c in JSON_COLUMNS and v is not None else v
        for c, v in zip(COLUMNS, values, strict=True)
    ]
