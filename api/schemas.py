"""Request and response bodies of the native API, and the mappers that fill them.

Limits live in the `Annotated` aliases below, defined once. Requests refuse unknown
fields; `UNSET` means "not sent".
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from ledger.commands import (
    Cancel,
    Delete,
    Fail,
    JobCommand,
    NewJob,
    RecordProgress,
    Start,
    Succeed,
)
from ledger.domain import JsonObject
from projections.rows import JobRow
from projections.views import Job as Job
from projections.views import RunningJob as RunningJob
from projections.views import Timestamp as Timestamp
from projections.views import iso as iso
from projections.views import iso_or_none as iso_or_none
from projections.views import to_job as to_job

ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
TENANT_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_BATCH: Final = 1000
MAX_COUNT: Final = 2**53 - 1  # the largest integer every JSON client reads exactly

JobId = Annotated[str, Meta(pattern=ID_PATTERN, description="A job id, unique within a tenant.")]
Tenant = Annotated[str, Meta(pattern=TENANT_PATTERN, description="A tenant name.")]
JobType = Annotated[str, Meta(pattern=ID_PATTERN, description="The kind of job, e.g. full_sync.")]
Name = Annotated[str, Meta(max_length=256)]
Step = Annotated[str, Meta(max_length=256)]
ErrorMessage = Annotated[str, Meta(min_length=1, max_length=4096)]
Reason = Annotated[str, Meta(max_length=1024)]
Progress = Annotated[int, Meta(ge=0, le=100, description="Percent done, 0 to 100.")]
Count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
Attempts = Annotated[int, Meta(ge=1, le=100)]
LabelKey = Annotated[str, Meta(min_length=1, max_length=64)]
LabelValue = Annotated[str, Meta(max_length=256)]
Labels = Annotated[dict[LabelKey, LabelValue], Meta(max_length=64)]
CounterName = Annotated[str, Meta(min_length=1, max_length=64)]
Counters = Annotated[dict[CounterName, Count], Meta(max_length=64)]


# -- requests ---------------------------------------------------------------------------


class CreateJob(Struct, kw_only=True, forbid_unknown_fields=True):
    """A new job. Without `id` the server makes one (`job-` and 12 hex digits)."""

    id: JobId | UnsetType = UNSET
    job_type: JobType
    name: Name | None = None
    parameters: JsonObject = msgspec.field(default_factory=dict)
    labels: Labels = msgspec.field(default_factory=dict)
    total_records: Count | None = None
    max_attempts: Attempts = 1
    tenant: Tenant | UnsetType = UNSET
    """Required from a global admin token; a tenant token may only name its own tenant."""


class EventBody(Struct, kw_only=True, forbid_unknown_fields=True, tag_field="type"):
    """Base of job events; `type` says which."""


class Started(EventBody, tag="started"):
    """The job starts (again, after a failure, while attempts remain)."""


class Progressed(EventBody, tag="progress"):
    """Progress of a running job; only the fields sent change."""

    progress: Progress | None = None
    current_step: Step | None = None
    records_processed: Count | None = None
    total_records: Count | None = None
    records_created: Count | None = None
    records_updated: Count | None = None
    records_deleted: Count | None = None
    counters: Counters | None = None


class Succeeded(EventBody, tag="succeeded"):
    """The running job finished well; progress becomes 100."""

    records_processed: Count | None = None
    records_created: Count | None = None
    records_updated: Count | None = None
    records_deleted: Count | None = None
    result: JsonObject | None = None
    counters: Counters | None = None


class Failed(EventBody, tag="failed"):
    """The running job failed."""

    error_message: ErrorMessage
    error_details: JsonObject | None = None
    counters: Counters | None = None


class Cancelled(EventBody, tag="cancelled"):
    """The pending or running job is cancelled."""

    reason: Reason | None = None


class Deleted(EventBody, tag="deleted"):
    """The job is deleted: it answers 410 Gone from then on."""


JobEvent = Started | Progressed | Succeeded | Failed | Cancelled | Deleted


class CreatedItem(EventBody, kw_only=True, tag="created"):
    """A new job, as `POST /api/v1/jobs` takes it (its tenant is the batch's)."""

    job_id: JobId
    job_type: JobType
    name: Name | None = None
    parameters: JsonObject = msgspec.field(default_factory=dict)
    labels: Labels = msgspec.field(default_factory=dict)
    total_records: Count | None = None
    max_attempts: Attempts = 1


class StartedItem(Started, kw_only=True, tag="started"):
    job_id: JobId


class ProgressedItem(Progressed, kw_only=True, tag="progress"):
    job_id: JobId


class SucceededItem(Succeeded, kw_only=True, tag="succeeded"):
    job_id: JobId


class FailedItem(Failed, kw_only=True, tag="failed"):
    job_id: JobId


class CancelledItem(Cancelled, kw_only=True, tag="cancelled"):
    job_id: JobId


class DeletedItem(Deleted, kw_only=True, tag="deleted"):
    job_id: JobId


BatchItem = (
    CreatedItem
    | StartedItem
    | ProgressedItem
    | SucceededItem
    | FailedItem
    | CancelledItem
    | DeletedItem
)


class EventBatch(Struct, kw_only=True, forbid_unknown_fields=True):
    """Events for many jobs of one tenant, applied in order."""

    events: Annotated[list[BatchItem], Meta(min_length=1, max_length=MAX_BATCH)]


def to_batch_command(item: BatchItem) -> JobCommand | NewJob:
    """The ledger command a batch item asks for."""
    if isinstance(item, CreatedItem):
        return NewJob(
            job_id=item.job_id,
            job_type=item.job_type,
            name=item.name,
            parameters=item.parameters,
            labels=item.labels,
            total_records=item.total_records,
            max_attempts=item.max_attempts,
        )
    return to_command(item)


def to_command(event: JobEvent) -> JobCommand:
    """The ledger command an event body asks for."""
    match event:
        case Started():
            return Start()
        case Progressed():
            return RecordProgress(
                progress=event.progress,
                current_step=event.current_step,
                records_processed=event.records_processed,
                total_records=event.total_records,
                records_created=event.records_created,
                records_updated=event.records_updated,
                records_deleted=event.records_deleted,
                counters=event.counters,
            )
        case Succeeded():
            return Succeed(
                records_processed=event.records_processed,
                records_created=event.records_created,
                records_updated=event.records_updated,
                records_deleted=event.records_deleted,
                result=event.result,
                counters=event.counters,
            )
        case Failed():
            return Fail(
                error_message=event.error_message,
                error_details=event.error_details,
                counters=event.counters,
            )
        case Cancelled():
            return Cancel(reason=event.reason)
        case Deleted():
            return Delete()
    raise AssertionError(f"unhandled event body {event!r}")


# -- responses --------------------------------------------------------------------------


class PageInfo(Struct, kw_only=True, rename="camel"):
    has_next_page: bool
    end_cursor: str | None


class JobList(Struct, kw_only=True, rename={"page_info": "pageInfo"}):
    jobs: list[Job]
    page_info: PageInfo


class JobProgress(Struct, kw_only=True):
    id: str
    status: str
    progress: int
    current_step: str | None
    records_processed: int
    total_records: int | None
    elapsed_ms: int | None
    """Since the first start while running; the duration once ended; null before a start."""


class RunningJobs(Struct, kw_only=True):
    jobs: list[RunningJob]


class EventAccepted(Struct, kw_only=True):
    """Where a recorded event put the job."""

    id: str
    version: int
    position: int
    status: str


class BatchResult(Struct, kw_only=True):
    """One batch item's outcome: version, position and status, or the item's problem."""

    job_id: str
    version: int | UnsetType = UNSET
    position: int | UnsetType = UNSET
    status: str | UnsetType = UNSET
    error: JsonObject | UnsetType = UNSET
    """The RFC 9457 problem this item alone was refused with."""


class BatchResults(Struct, kw_only=True):
    results: list[BatchResult]


def to_progress(row: JobRow, now: datetime) -> JobProgress:
    """A job's progress; `now` measures a running job's elapsed time."""
    elapsed: int | None = None
    if row.status == "running" and row.start_time is not None:
        elapsed = max(0, int((now - row.start_time).total_seconds() * 1000))
    elif row.end_time is not None and row.start_time is not None:
        elapsed = row.duration_ms
    return JobProgress(
        id=row.id,
        status=row.status,
        progress=row.progress,
        current_step=row.current_step,
        records_processed=row.records_processed,
        total_records=row.total_records,
        elapsed_ms=elapsed,
    )
