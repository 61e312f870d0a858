"""The running set (`running_jobs`): jobs that are running, for dashboards.

The table also keeps pending jobs and failed jobs with attempts left, since a
later Started needs their job_type and a projection reads no other model.
"""

from __future__ import annotations

from datetime import datetime
from functools import singledispatch
from typing import TYPE_CHECKING, Final

import msgspec
from psycopg.sql import SQL

from ledger.domain import Job, JobStatus, stream_id
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
    utc,
    utc_or_none,
)
from projections.views import running_body

if TYPE_CHECKING:
    from psycopg import Cursor
    from psycopg.rows import DictRow


class Active(msgspec.Struct, frozen=True):
    """A `running_jobs` row."""

    tenant: str
    id: str
    job_type: str
    status: str
    progress: int
    current_step: str | None
    start_time: datetime | None
    updated_at: datetime
    attempt: int
    max_attempts: int
    version: int


COLUMNS: Final = Active.__struct_fields__
TYPES: Final = (
    "text", "text", "text", "text", "int4", "text", "timestamptz", "timestamptz", "int4", "int4",
    "int4", "bytea", "int4",
)  # fmt: skip
"""The `running_jobs` column types in COLUMNS order and then those of `body` and
`body_version`, for binary COPY."""
SELECT_ACTIVE: Final = select_by_keys("running_jobs", COLUMNS)
RUNNING_JOBS: Final = BulkTable("running_jobs", (*COLUMNS, "body", "body_version"), TYPES)
DELETE_ACTIVE: Final = SQL(f"DELETE FROM running_jobs WHERE {KEYS}")


@singledispatch
def apply(event: Job.Event, row: Active | None) -> Active | None:
    """The row after `event`; None once the job can no longer run."""
    return row


@apply.register
def _(event: Job.Created, row: Active | None) -> Active | None:
    return Active(
        tenant=event.tenant,
        id=event.job_id,
        job_type=event.job_type,
        status=JobStatus.PENDING.value,
        progress=0,
        current_step=None,
        start_time=None,
        updated_at=event.timestamp,
        attempt=0,
        max_attempts=event.max_attempts,
        version=event.originator_version,
    )


@apply.register
def _(event: Job.Started, row: Active | None) -> Active | None:
    if row is None:
        return None
    retry = row.status == JobStatus.FAILED.value  # a retry counts from zero again
    return msgspec.structs.replace(
        row,
        status=JobStatus.RUNNING.value,
        progress=0 if retry else row.progress,
        current_step=None if retry else row.current_step,
        start_time=row.start_time or event.timestamp,
        attempt=event.attempt,
        updated_at=event.timestamp,
        version=event.originator_version,
    )


@apply.register
def _(event: Job.Progressed, row: Active | None) -> Active | None:
    if row is None:
        return None
    return msgspec.structs.replace(
        row,
        progress=row.progress if event.progress is None else event.progress,
        current_step=row.current_step if event.current_step is None else event.current_step,
        updated_at=event.timestamp,
        version=event.originator_version,
    )


@apply.register
def _(event: Job.Failed, row: Active | None) -> Active | None:
    if row is None or row.attempt >= row.max_attempts:
        return None
    return msgspec.structs.replace(
        row, status=JobStatus.FAILED.value, updated_at=event.timestamp,
        version=event.originator_version,
    )  # fmt: skip


@apply.register(Job.Succeeded)
@apply.register(Job.Cancelled)
@apply.register(Job.Deleted)
def _(event: Job.Event, row: Active | None) -> Active | None:
    return None


APPLY: Final = ByClass(apply.dispatch)


def body_of(row: Active) -> bytes:
    """The row's job as the running set lists it (`views.running_body`)."""
    return running_body(row.id, row.job_type, row.status, row.progress, row.start_time)


def with_body(row: Active) -> tuple[object, ...]:
    """The row's values, then its body and the version the body shows: none for a job
    pending or failed (the set lists running jobs alone, and a start writes the body)."""
    if row.status != JobStatus.RUNNING.value:
        return (*msgspec.structs.astuple(row), None, None)
    return (*msgspec.structs.astuple(row), body_of(row), row.version)


def fold(rows: dict[str, Active], batch: Batch) -> set[str]:
    """Apply the batch to `rows` (by stream id, removed jobs dropped); the streams changed."""
    changed: set[str] = set()
    for event, _ in batch:
        if not isinstance(event, Job.Event):
            continue
        sid = event.originator_id
        row = rows.get(sid)
        if row is not None and event.originator_version <= row.version:
            continue  # already applied
        new = APPLY[type(event)](event, row)
        if new is None:
            rows.pop(sid, None)
        else:
            rows[sid] = new
        changed.add(sid)
    return changed


class RunningView(TrackedView):
    """The `running_jobs` table and the `running_jobs_tracking` position."""

    name = "running_jobs"
    tables = ("running_jobs",)
    query_indexes = ("running_jobs_tenant_start_time_idx", "running_jobs_start_time_idx")

    def write(self, curs: Cursor[DictRow], batch: Batch) -> None:
        """Apply the batch to the running set."""
        keys = stream_keys(batch)
        curs.execute(SELECT_ACTIVE, keys.arrays)
        rows = {stream_id(r["tenant"], r["id"]): _from_record(r) for r in curs}
        stored = set(rows)
        changed = fold(rows, batch)
        added = [rows[sid] for sid in changed if sid in rows and sid not in stored]
        kept = [rows[sid] for sid in changed if sid in rows and sid in stored]
        removed = [sid for sid in changed if sid not in rows and sid in stored]
        if added:
            RUNNING_JOBS.insert(curs, map(with_body, added))
        if kept:
            RUNNING_JOBS.upsert(curs, map(with_body, kept))
        if removed:
            curs.execute(DELETE_ACTIVE, key_arrays(removed))


class RunningProjection(BatchProjection[RunningView]):
    """Keeps the running set: in on Started, out when the job ends or is deleted."""

    name = "running_jobs"


def _from_record(record: DictRow) -> Active:
    values = dict(record)
    values["start_time"] = utc_or_none(values["start_time"])
    values["updated_at"] = utc(values["updated_at"])
    return Active(**values)
