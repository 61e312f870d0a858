"""Read-model rows and query shapes shared by the projections, the query service and the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Generic, TypeVar

import msgspec

from ledger.domain import Job

V = TypeVar("V")


class JobRow(msgspec.Struct):
    """One job as the `jobs` read model holds it (and as a replay of its events gives it).

    Fields are in the order of the columns the query service selects, so a record
    converts positionally (`JobRow(*record)`), many times faster than by keyword.
    """

    tenant: str
    id: str
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
    start_time: datetime | None
    end_time: datetime | None
    duration_ms: int | None
    created_at: datetime
    updated_at: datetime
    error_message: str | None
    error_details: dict[str, Any] | None
    error_history: list[dict[str, Any]]
    parameters: dict[str, Any]
    labels: dict[str, str]
    counters: dict[str, int]
    result: dict[str, Any] | None
    cancel_reason: str | None
    attempt: int
    max_attempts: int
    created_by: str
    version: int
    position: int
    """Global position of the job's last event."""


JOB_COLUMNS: Final = ", ".join(JobRow.__struct_fields__)
"""The `jobs` columns a JobRow holds, in its order: every column but the job's `body`."""


def job_row(job: Job, position: int) -> JobRow:
    """The row for `job` as it stands, its last event being at `position`."""
    return JobRow(
        tenant=job.tenant,
        id=job.job_id,
        job_type=job.job_type,
        name=job.name,
        status=job.status.value,
        progress=job.progress,
        current_step=job.current_step,
        records_processed=job.records_processed,
        total_records=job.total_records,
        records_created=job.records_created,
        records_updated=job.records_updated,
        records_deleted=job.records_deleted,
        start_time=job.start_time,
        end_time=job.end_time,
        duration_ms=job.duration_ms,
        created_at=job.created_on,
        updated_at=job.modified_on,
        error_message=job.error_message,
        error_details=job.error_details,
        error_history=job.error_history,
        parameters=job.parameters,
        labels=job.labels,
        counters=job.counters,
        result=job.result,
        cancel_reason=job.cancel_reason,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        created_by=job.created_by,
        version=job.version,
        position=position,
    )


class JobQuery(msgspec.Struct, kw_only=True, frozen=True):
    """A page of the job list. `tenant=None` means every tenant (a global admin)."""

    tenant: str | None
    job_type: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    start_date: datetime | None = None
    """Jobs started at or after this moment (unstarted jobs are left out)."""
    end_date: datetime | None = None
    """Jobs started before this moment (unstarted jobs are left out)."""
    first: int = 50
    after: str | None = None
    """An opaque cursor from a previous page's `end_cursor`."""


class JobPage(msgspec.Struct, Generic[V], kw_only=True):
    jobs: list[V]
    has_next_page: bool
    end_cursor: str | None


class StatsQuery(msgspec.Struct, kw_only=True, frozen=True):
    tenant: str | None
    group_by: tuple[str, ...] = ("status", "job_type")
    """Any of `status`, `job_type`, `day`, `tenant`."""
    start_date: datetime | None = None
    """Selects per-day buckets by the jobs' creation day, inclusive."""
    end_date: datetime | None = None
    """Exclusive."""


class DurationStats(msgspec.Struct, kw_only=True):
    avg: float | None
    min: int | None
    max: int | None


class StatsGroup(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One group of the stats answer; only the keys grouped by are set."""

    count: int
    duration_ms: DurationStats
    status: str | None = None
    job_type: str | None = None
    day: str | None = None
    tenant: str | None = None


class StatsResult(msgspec.Struct, kw_only=True):
    groups: list[StatsGroup]
    total: int
