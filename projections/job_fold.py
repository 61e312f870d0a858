"""The `jobs` fold over plain rows: each event's change to its job's row, in place.

A row is a list of the `jobs` columns in JobRow order, ready for COPY. Each handler
makes exactly the change the event's own `apply` (and the library's `mutate`) makes
to a Job, seen through `job_row`; tests/property/test_job_fold.py checks that for
any sequence of commands the domain accepts. Building a Job for each row, mutating
it and turning it back into a row cost twice as much as the rest of the model. An
event class without a handler here goes through the domain's own `mutate`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from eventsourcing.domain import OriginatorVersionError
from msgspec.structs import astuple

from ledger.domain import RECORD_COUNTERS, Job, JobStatus, millis_between, stream_id
from projections.rows import JobRow, job_row

Row = list[Any]
"""A `jobs` row: the values of JobRow's fields, in order."""

FIELDS: Final = JobRow.__struct_fields__
_at = FIELDS.index
TENANT, ID, CREATED_AT = _at("tenant"), _at("id"), _at("created_at")
STATUS, PROGRESS, CURRENT_STEP = _at("status"), _at("progress"), _at("current_step")
TOTAL_RECORDS, START_TIME, END_TIME = _at("total_records"), _at("start_time"), _at("end_time")
DURATION, UPDATED_AT = _at("duration_ms"), _at("updated_at")
ERROR_MESSAGE, ERROR_DETAILS = _at("error_message"), _at("error_details")
ERROR_HISTORY, COUNTERS, RESULT = _at("error_history"), _at("counters"), _at("result")
CANCEL_REASON, ATTEMPT, VERSION, POSITION = (
    _at("cancel_reason"), _at("attempt"), _at("version"), _at("position"),
)  # fmt: skip
RECORDS: Final = tuple(zip(RECORD_COUNTERS, map(_at, RECORD_COUNTERS), strict=True))
"""(event field, row index) of the record counters."""

FAILED: Final = JobStatus.FAILED.value


def created_row(event: Job.Created, position: int) -> Row:
    """The row of the job `event` creates."""
    return [
        event.tenant, event.job_id, event.job_type, event.name, JobStatus.PENDING.value,
        0, None, 0, event.total_records, 0, 0, 0, None, None, None,
        event.timestamp, event.timestamp, None, None, [], event.parameters, event.labels,
        {}, None, None, 0, event.max_attempts, event.actor, event.originator_version,
        position,
    ]  # fmt: skip


def advance(row: Row, event: Job.Event, position: int) -> None:
    """Apply `event`, the next event of the row's job, to `row` (as `mutate` does)."""
    expected = row[VERSION] + 1
    if event.originator_version != expected:
        raise OriginatorVersionError(event.originator_version, expected)
    change = CHANGES.get(type(event))
    if change is None:
        row[:] = _by_domain(row, event, position)
        return
    change(row, event)
    row[VERSION] = event.originator_version
    row[UPDATED_AT] = event.timestamp
    row[POSITION] = position


def _started(row: Row, event: Job.Started) -> None:
    if row[STATUS] == FAILED:
        # A retry: as Job.Started.apply, the failed attempt moves into the history.
        failed_at = row[END_TIME]
        row[ERROR_HISTORY] = [
            *row[ERROR_HISTORY],
            {
                "attempt": row[ATTEMPT],
                "error_message": row[ERROR_MESSAGE],
                "error_details": row[ERROR_DETAILS],
                "failed_at": None if failed_at is None else failed_at.isoformat(),
            },
        ]
        row[ERROR_MESSAGE] = row[ERROR_DETAILS] = None
        row[PROGRESS] = 0
        row[CURRENT_STEP] = None
        for _, index in RECORDS:
            row[index] = 0
        row[COUNTERS] = {}
        row[END_TIME] = row[DURATION] = None
    if row[START_TIME] is None:
        row[START_TIME] = event.timestamp
        row[DURATION] = _duration(row)
    row[ATTEMPT] = event.attempt
    row[STATUS] = JobStatus.RUNNING.value


def _progressed(row: Row, event: Job.Progressed) -> None:
    if event.progress is not None:
        row[PROGRESS] = event.progress
    if event.current_step is not None:
        row[CURRENT_STEP] = event.current_step
    if event.total_records is not None:
        row[TOTAL_RECORDS] = event.total_records
    _records(row, event)
    _counters(row, event.counters)


def _succeeded(row: Row, event: Job.Succeeded) -> None:
    _records(row, event)
    _counters(row, event.counters)
    row[RESULT] = event.result
    row[PROGRESS] = 100
    _end(row, JobStatus.COMPLETED, event)


def _failed(row: Row, event: Job.Failed) -> None:
    _counters(row, event.counters)
    row[ERROR_MESSAGE] = event.error_message
    row[ERROR_DETAILS] = event.error_details
    _end(row, JobStatus.FAILED, event)


def _cancelled(row: Row, event: Job.Cancelled) -> None:
    row[CANCEL_REASON] = event.reason
    _end(row, JobStatus.CANCELLED, event)


def _deleted(row: Row, event: Job.Deleted) -> None:
    row[STATUS] = JobStatus.DELETED.value


def _records(row: Row, event: Job.Progressed | Job.Succeeded) -> None:
    for name, index in RECORDS:
        value = getattr(event, name)
        if value is not None:
            row[index] = value


def _counters(row: Row, counters: dict[str, int] | None) -> None:
    if counters:
        row[COUNTERS] = {**row[COUNTERS], **counters}


def _end(row: Row, status: JobStatus, event: Job.Event) -> None:
    row[STATUS] = status.value
    row[END_TIME] = event.timestamp
    row[DURATION] = _duration(row)


def _duration(row: Row) -> int | None:
    """As Job.duration_ms: from the first start to the end, once both are known."""
    start, end = row[START_TIME], row[END_TIME]
    return None if start is None or end is None else millis_between(start, end)


CHANGES: Final[dict[type, Callable[[Row, Any], None]]] = {
    Job.Started: _started,
    Job.Progressed: _progressed,
    Job.Succeeded: _succeeded,
    Job.Failed: _failed,
    Job.Cancelled: _cancelled,
    Job.Deleted: _deleted,
}
"""Each event class's change to a row, beyond version, update time and position."""


def _by_domain(row: Row, event: Job.Event, position: int) -> Row:
    job = job_from_row(JobRow(*row))
    event.mutate(job)
    return list(astuple(job_row(job, position)))


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
