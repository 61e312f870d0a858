"""The `jobs` read model: one row per job, equal to `job_row` of the job's replay.

Each batch loads the rows of the jobs it touches, applies the batch's events to
them in place (projections.job_fold, held to the domain's own `apply` by a
property test) and writes them back. Deleted jobs leave the table and a
tombstone in `deleted_jobs` (410 rather than 404).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from psycopg.sql import SQL

from ledger.domain import Job, JobStatus, stream_id
from projections.bulk import BulkTable
from projections.job_fold import (
    CREATED_AT,
    END_TIME,
    ID,
    POSITION,
    START_TIME,
    STATUS,
    TENANT,
    UPDATED_AT,
    VERSION,
    Row,
    advance,
    created_row,
)
from projections.rows import JobRow
from projections.tracking import (
    KEYS,
    Batch,
    BatchProjection,
    TrackedView,
    select_by_keys,
    stream_keys,
    utc,
    utc_or_none,
)
from projections.views import job_body

if TYPE_CHECKING:
    from psycopg import Cursor
    from psycopg.rows import DictRow

log = logging.getLogger(__name__)

COLUMNS: Final = JobRow.__struct_fields__
TYPES: Final = (
    "text", "text", "text", "text", "text", "int4", "text", "int8", "int8", "int8", "int8",
    "int8", "timestamptz", "timestamptz", "int8", "timestamptz", "timestamptz", "text", "jsonb",
    "jsonb", "jsonb", "jsonb", "jsonb", "jsonb", "text", "int4", "int4", "text", "int4", "int8",
    "bytea", "int4",
)  # fmt: skip
"""The `jobs` column types in COLUMNS order and then those of `body` and `body_version`,
for binary COPY."""
DELETED: Final = JobStatus.DELETED.value

SELECT_JOBS: Final = select_by_keys("jobs", COLUMNS)
SELECT_TOMBSTONES: Final = select_by_keys("deleted_jobs", ("tenant", "id"))
JOBS: Final = BulkTable("jobs", (*COLUMNS, "body", "body_version"), TYPES)
DELETE_JOBS: Final = SQL(f"DELETE FROM jobs WHERE {KEYS}")
INSERT_TOMBSTONES: Final = SQL(
    "INSERT INTO deleted_jobs (tenant, id, version, position, deleted_at) "
    "SELECT * FROM unnest(%b::text[], %b::text[], %b::int[], %b::bigint[], %b::timestamptz[]) "
    "ON CONFLICT (tenant, id) DO NOTHING"
)


def row_from_record(record: DictRow) -> JobRow:
    """A JobRow from a `jobs` record (its body left out), times in UTC as the events have
    them."""
    row = JobRow(**{name: record[name] for name in COLUMNS})
    row.start_time = utc_or_none(row.start_time)
    row.end_time = utc_or_none(row.end_time)
    row.created_at = utc(row.created_at)
    row.updated_at = utc(row.updated_at)
    return row


def stored_row(record: DictRow) -> Row:
    """A fold row from a SELECT_JOBS record, times in UTC as the events have them (a
    retry writes the failed attempt's end into the error history as ISO text)."""
    row = list(record.values())
    for index in (START_TIME, END_TIME):
        row[index] = utc_or_none(row[index])
    for index in (CREATED_AT, UPDATED_AT):
        row[index] = utc(row[index])
    return row


def with_body(row: Row) -> list[object]:
    """The row's values, its body (the job's answer: `views.job_body`) and the version the
    body shows."""
    return [*row, job_body(JobRow(*row)), row[VERSION]]


def fold(rows: dict[str, Row], gone: set[str], batch: Batch) -> dict[str, Row]:
    """Apply the batch's events to `rows` (by stream id); the rows changed.

    Events a job has already taken (version not above its own) and events of
    deleted jobs are skipped, so a replay changes nothing.
    """
    changed: dict[str, Row] = {}
    for event, position in batch:
        if not isinstance(event, Job.Event):
            continue
        sid = event.originator_id
        row = rows.get(sid)
        if sid in gone or (row is not None and event.originator_version <= row[VERSION]):
            continue
        if isinstance(event, Job.Created):
            row = rows[sid] = created_row(event, position)
        elif row is None:
            log.warning("jobs: %s v%d has no row; skipped", sid, event.originator_version)
            continue
        else:
            advance(row, event, position)
        changed[sid] = row
    return changed


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
        rows = {stream_id(r["tenant"], r["id"]): stored_row(r) for r in curs}
        curs.execute(SELECT_TOMBSTONES, keys)
        gone = {stream_id(r["tenant"], r["id"]) for r in curs}
        stored = set(rows)
        changed = fold(rows, gone, batch)
        added: list[Row] = []
        kept: list[Row] = []
        deleted: list[Row] = []
        for sid, row in changed.items():
            if row[STATUS] == DELETED:
                deleted.append(row)
            else:
                (kept if sid in stored else added).append(row)
        if added:
            JOBS.insert(curs, map(with_body, added))
        if kept:
            JOBS.upsert(curs, map(with_body, kept))
        if deleted:
            curs.execute(DELETE_JOBS, ([r[TENANT] for r in deleted], [r[ID] for r in deleted]))
            curs.execute(
                INSERT_TOMBSTONES,
                (
                    [r[TENANT] for r in deleted],
                    [r[ID] for r in deleted],
                    [r[VERSION] for r in deleted],
                    [r[POSITION] for r in deleted],
                    [r[UPDATED_AT] for r in deleted],
                ),
            )


class JobsProjection(BatchProjection[JobsView]):
    """Keeps `jobs`: every Job event changes its job's row; Deleted removes it."""

    name = "jobs"
