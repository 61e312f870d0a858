"""Answer-shaped reads: the columns of a job as the API shows it, timestamps formatted by
PostgreSQL.

A page of 50 jobs read as rows of datetimes and then formatted in Python spends most of
its time converting: asyncpg builds a datetime for each of 200 timestamps and the API
turns each back into text. Formatted by `to_char` in the query, each arrives as the
string the answer carries, and a record converts to the answer's struct positionally.

A view is the tuple of its fields, in the order the answer's struct declares them; a
timestamp field is formatted, every other field is the column of its name. The API's
tests hold its structs to these tuples, field for field.
"""

from __future__ import annotations

from typing import Final

ISO_MS: Final = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'
"""ISO 8601 in UTC with milliseconds (truncated, not rounded) and a Z: `api.schemas.iso`."""

TIMESTAMPS: Final = frozenset({"start_time", "end_time", "created_at", "updated_at"})

JOB_VIEW: Final = (
    "id", "tenant", "job_type", "name", "status", "progress", "current_step",
    "records_processed", "total_records", "records_created", "records_updated",
    "records_deleted", "start_time", "end_time", "duration_ms", "created_at", "updated_at",
    "error_message", "error_details", "error_history", "parameters", "labels", "counters",
    "result", "cancel_reason", "attempt", "max_attempts", "version", "position",
)  # fmt: skip
"""The native API's job (`api.schemas.Job`)."""

RUNNING_VIEW: Final = ("id", "job_type", "status", "progress", "start_time")
"""A job of the running set (`api.schemas.RunningJob`)."""

CURSOR_KEY: Final = "(extract(epoch FROM created_at) * 1000000)::int8, id, tenant"
"""The list order's key of a row, for its page's cursor: creation time in microseconds
since the epoch (exact: `extract` answers a numeric), id, tenant."""


def iso_sql(column: str) -> str:
    """`column` (a timestamptz) as the API's ISO 8601 text; NULL stays NULL.

    Not aliased to the column's name: an ORDER BY over the same name would then sort by
    the text (milliseconds) instead of the timestamp (microseconds).
    """
    return f"to_char({column} AT TIME ZONE 'UTC', '{ISO_MS}')"


def view_columns(view: tuple[str, ...]) -> str:
    """The select list that reads `view` from a table (or subquery) holding its columns."""
    return ", ".join(iso_sql(name) if name in TIMESTAMPS else name for name in view)
