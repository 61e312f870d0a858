"""The job as the native API shows it, and the answer-shaped reads built on it.

The `jobs` read model keeps each job's answer as well as its columns: `body` is the job's
JSON as `GET /api/v1/jobs/{id}` answers it (`job_body`), written by the projection with
the row. A list page then reads one column per job and joins the bodies, instead of decoding
thirty columns of fifty rows, building fifty structs and encoding them again: half the
server's and PostgreSQL's work per page.

The running set is kept the same way: each running job's `running_jobs` row holds the job
as the set lists it (`running_body`), and PostgreSQL joins up to a thousand of them into the
answer's array, one value to read rather than a thousand records to decode and structs
to encode again. A row without a body for its version is written out by PostgreSQL
(`view_json_sql`) with the same bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

import msgspec
from msgspec import Meta, Struct

from ledger.domain import JsonObject
from projections.rows import JobRow

Timestamp = Annotated[
    str, Meta(description="ISO 8601 UTC with milliseconds, e.g. 2024-02-01T10:00:00.000Z")
]

ISO_MS: Final = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'
"""ISO 8601 in UTC with milliseconds (truncated, not rounded) and a Z: as `iso` writes it."""

TIMESTAMPS: Final = frozenset({"start_time", "end_time", "created_at", "updated_at"})


class Job(Struct):
    """A job as the read models hold it: the native API's job, and a list item's `body`."""

    id: str
    tenant: str
    job_type: str
    name: str | None
    status: str
    progress: int
    current_step: str | None
    records_processed: int
    total_records: int | None
    records_created: int
    records_updated: int
    records_deleted: int
    start_time: Timestamp | None
    end_time: Timestamp | None
    duration_ms: int | None
    created_at: Timestamp
    updated_at: Timestamp
    error_message: str | None
    error_details: JsonObject | None
    error_history: list[JsonObject]
    parameters: JsonObject
    labels: dict[str, str]
    counters: dict[str, int]
    result: JsonObject | None
    cancel_reason: str | None
    attempt: int
    max_attempts: int
    version: int
    """The job's event count: send it back as If-Match to write only over this state."""
    position: int
    """The global position of the job's last event."""


RUNNING_VIEW: Final = ("id", "job_type", "status", "progress", "start_time")
"""The fields of a job of the running set (`RunningJob`), in order."""


class RunningJob(Struct):
    """A job of the running set, as `GET /api/v1/jobs/running` lists it; its fields are
    RUNNING_VIEW, in that order."""

    id: str
    job_type: str
    status: str
    progress: int
    start_time: Timestamp | None


CURSOR_KEY: Final = "(extract(epoch FROM created_at) * 1000000)::int8, id, tenant"
"""The list order's key of a row, for its page's cursor: creation time in microseconds
since the epoch (exact: `extract` answers a numeric), id, tenant."""

# The keys of nested objects sorted: a body is then a function of the job's values alone,
# the same whether its maps were last built from an event or read back from jsonb (which
# keeps keys in an order of its own), so a rebuild writes the same bytes.
_encoder = msgspec.json.Encoder(order="deterministic")


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with millisecond precision and a Z."""
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    # Every timestamp served passes here: %-formatting takes a third of strftime's time.
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond // 1000,
    )  # fmt: skip


def iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


def to_job(row: JobRow) -> Job:
    """The API's job from its read-model row."""
    return Job(
        id=row.id,
        tenant=row.tenant,
        job_type=row.job_type,
        name=row.name,
        status=row.status,
        progress=row.progress,
        current_step=row.current_step,
        records_processed=row.records_processed,
        total_records=row.total_records,
        records_created=row.records_created,
        records_updated=row.records_updated,
        records_deleted=row.records_deleted,
        start_time=iso_or_none(row.start_time),
        end_time=iso_or_none(row.end_time),
        duration_ms=row.duration_ms,
        created_at=iso(row.created_at),
        updated_at=iso(row.updated_at),
        error_message=row.error_message,
        error_details=row.error_details,
        error_history=row.error_history,
        parameters=row.parameters,
        labels=row.labels,
        counters=row.counters,
        result=row.result,
        cancel_reason=row.cancel_reason,
        attempt=row.attempt,
        max_attempts=row.max_attempts,
        version=row.version,
        position=row.position,
    )


def job_body(row: JobRow) -> bytes:
    """The row's job as JSON: the answer of `GET /api/v1/jobs/{id}`, the keys of its nested
    objects (parameters, labels, results and the like) sorted."""
    return _encoder.encode(to_job(row))


def running_body(
    job_id: str, job_type: str, status: str, progress: int, start_time: datetime | None
) -> bytes:
    """The job as the running set lists it: a `running_jobs` row's `body`."""
    return _encoder.encode(RunningJob(job_id, job_type, status, progress, iso_or_none(start_time)))


def iso_sql(column: str) -> str:
    """`column` (a timestamptz) as the API's ISO 8601 text; NULL stays NULL.

    Not aliased to the column's name: an ORDER BY over the same name would then sort by
    the text (milliseconds) instead of the timestamp (microseconds).
    """
    return f"to_char({column} AT TIME ZONE 'UTC', '{ISO_MS}')"


def view_json_sql(view: tuple[str, ...]) -> str:
    """A text expression: the row's `view` as a JSON object, its fields in order and
    without spaces, as msgspec writes the struct whose fields `view` names; a NULL
    field is null, a timestamp is formatted as `iso` formats it."""
    template = ",".join(f'"{name}":%s' for name in view)
    values = ", ".join(
        f"coalesce(to_json({iso_sql(name) if name in TIMESTAMPS else name})::text, 'null')"
        for name in view
    )
    return f"format('{{{template}}}', {values})"
