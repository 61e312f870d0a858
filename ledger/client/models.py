"""The answers of the ledger's HTTP API as typed Structs, and the errors a client raises.

The Structs accept fields they don't know, so an older client keeps working against a
newer server.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from msgspec import Struct

JsonObject = dict[str, Any]


class Job(Struct, kw_only=True):
    """A job as the ledger's read model holds it (`GET /api/v1/jobs/{id}`)."""

    id: str
    job_type: str
    status: str
    progress: int = 0
    tenant: str | None = None
    name: str | None = None
    current_step: str | None = None
    records_processed: int = 0
    total_records: int | None = None
    records_created: int = 0
    records_updated: int = 0
    records_deleted: int = 0
    start_time: str | None = None
    end_time: str | None = None
    duration_ms: int | None = None
    created_at: str | None = None
    updated_at: str | None = None
    error_message: str | None = None
    error_details: JsonObject | None = None
    error_history: list[JsonObject] = msgspec.field(default_factory=list)
    parameters: JsonObject = msgspec.field(default_factory=dict)
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    counters: dict[str, int] = msgspec.field(default_factory=dict)
    result: JsonObject | None = None
    cancel_reason: str | None = None
    attempt: int = 0
    max_attempts: int = 1
    version: int = 0
    """The job's event count; pass it as `if_version` to write only over this state."""
    position: int = 0
    """The global log position of the job's last event."""


class PageInfo(Struct, kw_only=True, rename="camel"):
    has_next_page: bool
    end_cursor: str | None = None


class Page(Struct, kw_only=True, rename={"page_info": "pageInfo"}):
    """One page of `GET /api/v1/jobs`."""

    jobs: list[Job]
    page_info: PageInfo


class RunningJob(Struct, kw_only=True):
    """A job of the running set (`GET /api/v1/jobs/running`)."""

    id: str
    job_type: str
    status: str
    progress: int
    start_time: str | None = None


class RunningJobs(Struct, kw_only=True):
    jobs: list[RunningJob]


class Durations(Struct, kw_only=True):
    avg: float | None = None
    min: int | None = None
    max: int | None = None


class StatsGroup(Struct, kw_only=True):
    """One group of `GET /api/v1/stats`; only the keys grouped by are set."""

    count: int
    duration_ms: Durations
    status: str | None = None
    job_type: str | None = None
    day: str | None = None
    tenant: str | None = None


class Stats(Struct, kw_only=True):
    groups: list[StatsGroup]
    total: int


class Recorded(Struct, kw_only=True):
    """Where a recorded event put its job."""

    id: str
    version: int
    position: int
    status: str


class BatchResult(Struct, kw_only=True):
    """One batch item's outcome: version, position and status, or its problem."""

    job_id: str
    version: int | None = None
    position: int | None = None
    status: str | None = None
    error: JsonObject | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class BatchResults(Struct, kw_only=True):
    results: list[BatchResult]


class FeedEvent(Struct, kw_only=True):
    """One event of the tenant's feed (`GET /api/v1/events`), as `events()` yields it."""

    type: str
    """created, started, progress, succeeded, failed, cancelled or deleted."""
    job_id: str
    version: int
    position: int
    """The event's place in the global log: pass the last one seen as `after` to resume."""
    occurred_at: str
    actor: str | None = None
    request_id: str | None = None
    tenant: str | None = None
    data: JsonObject = msgspec.field(default_factory=dict)


class EventPage(Struct, kw_only=True):
    events: list[FeedEvent]
    next: int


class JobChange(Struct, kw_only=True):
    """A job whose latest event is at `position`, as `changes()` reports it."""

    position: int
    job: Job


# -- errors -------------------------------------------------------------------------------


class ClientError(Exception):
    """Base of everything the ledger client raises."""


class Unavailable(ClientError):
    """The server could not be reached or kept answering 503/429 through every retry."""


class ProblemError(ClientError):
    """The server refused the request with an RFC 9457 problem."""

    def __init__(self, status: int, problem: JsonObject) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", ""))
        self.title = str(problem.get("title", ""))
        self.detail = str(problem.get("detail", ""))
        super().__init__(f"{status} {self.title}: {self.detail}".strip())


class NotFound(ProblemError):
    """404: the tenant has no such job."""


class Gone(ProblemError):
    """410: the job was deleted."""


class Conflict(ProblemError):
    """409: the job exists already, or its status does not allow the transition."""


class PreconditionFailed(ProblemError):
    """412: the job's version is not the one `if_version` named."""


class Unauthorized(ProblemError):
    """401 or 403: no valid token, or a role that may not do this."""


ERRORS_BY_STATUS: Final[dict[int, type[ProblemError]]] = {
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    410: Gone,
    412: PreconditionFailed,
}
