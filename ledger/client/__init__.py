"""A client library for services that post job events to the ledger, sync and asyncio.

from ledger.client import LedgerClient

with LedgerClient("http://127.0.0.1:8000", token) as ledger:
    job = ledger.create_job("full_sync", name="Nightly import")
    with ledger.run(job.id) as run:
        run.progress(50, current_step="loading")
"""

from __future__ import annotations

from ledger.client.aio import AsyncJobRun, AsyncLedgerClient, AsyncProgressBatcher
from ledger.client.calls import RetryPolicy
from ledger.client.models import (
    BatchResult,
    ClientError,
    Conflict,
    FeedEvent,
    Gone,
    Job,
    JobChange,
    NotFound,
    Page,
    PreconditionFailed,
    ProblemError,
    Recorded,
    RunningJob,
    Stats,
    StatsGroup,
    Unauthorized,
    Unavailable,
)
from ledger.client.sync import JobRun, LedgerClient, ProgressBatcher

__all__ = [
    "AsyncJobRun",
    "AsyncLedgerClient",
    "AsyncProgressBatcher",
    "BatchResult",
    "ClientError",
    "Conflict",
    "FeedEvent",
    "Gone",
    "Job",
    "JobChange",
    "JobRun",
    "LedgerClient",
    "NotFound",
    "Page",
    "PreconditionFailed",
    "ProblemError",
    "ProgressBatcher",
    "Recorded",
    "RetryPolicy",
    "RunningJob",
    "Stats",
    "StatsGroup",
    "Unauthorized",
    "Unavailable",
]
