"""Jobs written with chosen event times, for tests of days, durations and date filters.

The domain's commands stamp the clock; these go through the same events with an
explicit `timestamp` (which the library accepts) and the application's `save`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledger.application import JobLedger
from ledger.domain import Job, stream_id

WHO = {"actor": "tok-test", "request_id": "req-dated"}
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def at(days: float = 0, ms: int = 0) -> datetime:
    return T0 + timedelta(days=days, milliseconds=ms)


def dated_job(
    ledger: JobLedger,
    tenant: str,
    job_id: str,
    *,
    job_type: str = "sync",
    created: datetime,
    started: datetime | None = None,
    ended: datetime | None = None,
    outcome: str = "succeeded",
    max_attempts: int = 1,
) -> int:
    """Create a job at `created`, start it at `started`, end it at `ended`; its last position."""
    job: Job = Job._create(
        Job.Created,
        id=stream_id(tenant, job_id),
        tenant=tenant,
        job_id=job_id,
        job_type=job_type,
        name=None,
        parameters={},
        labels={},
        total_records=None,
        max_attempts=max_attempts,
        timestamp=created,
        **WHO,
    )
    if started is not None:
        job.trigger_event(Job.Started, attempt=1, timestamp=started, **WHO)
    if ended is not None:
        match outcome:
            case "succeeded":
                job.trigger_event(
                    Job.Succeeded, records_processed=None, records_created=None,
                    records_updated=None, records_deleted=None, result=None, counters=None,
                    timestamp=ended, **WHO,
                )  # fmt: skip
            case "failed":
                job.trigger_event(
                    Job.Failed, error_message="boom", error_details=None, counters=None,
                    timestamp=ended, **WHO,
                )  # fmt: skip
            case "cancelled":
                job.trigger_event(Job.Cancelled, reason=None, timestamp=ended, **WHO)
    recordings = ledger.save(job)
    return max(r.notification.id for r in recordings)
