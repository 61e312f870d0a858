"""History endpoints for auditors: a job's events, and jobs and statistics as they stood.

Every answer here needs an auditor or admin token and stays within the caller's
tenant. A job at a version or a moment is rebuilt by replaying its events; lists
and statistics as of a moment come from the status intervals.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec
from litestar import Request, Response
from litestar.concurrency import sync_to_thread
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, QueryParameter

from api.auth import Caller, authenticate, principal_of
from api.params import moment
from api.parts import parts_of
from api.problems import problem_responses
from api.routing import get
from api.schemas import Job, JobList, PageInfo, iso, to_job
from ledger.domain import JobStatus
from ledger.errors import JobGone
from ledger.history import History, Then, to_end_of_millisecond
from ledger.tokens import Role
from projections.history import HistoryService, LoggedEvent
from projections.rows import JobQuery, StatsQuery, StatsResult, job_row

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

AUDITORS: Final = frozenset({Role.ADMIN, Role.AUDITOR})

Version = Annotated[
    int | None,
    QueryParameter(ge=1, le=2**31 - 1, description="The job after its first N events."),
]


class HistoryEvent(msgspec.Struct, kw_only=True):
    """One recorded event: what happened to which job, when, and who wrote it."""

    type: str
    """created, started, progress, succeeded, failed, cancelled or deleted."""
    version: int
    """The job's version this event made (1 for created)."""
    position: int
    """The event's place in the global log."""
    occurred_at: str
    actor: str
    """The id of the token that wrote the event."""
    request_id: str
    data: dict[str, Any]
    """The event's own fields, as recorded."""
    job_id: str
    tenant: str


class JobEvents(msgspec.Struct, kw_only=True):
    job_id: str
    events: list[HistoryEvent]


async def may_audit(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: an auditor or admin token; other roles get 403."""
    await authenticate(connection)
    require_auditor(connection)


def require_auditor(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Refuse history reads to roles other than auditor and admin."""
    _refuse_unless_auditor(principal_of(connection).role)


def _require_auditor(caller: Caller) -> None:
    _refuse_unless_auditor(caller.principal.role)


def _refuse_unless_auditor(role: Role) -> None:
    if role not in AUDITORS:
        raise PermissionDeniedException(f"a {role} token may not read history; auditor or admin")


def _as_of(raw: str | None) -> datetime:
    parsed = moment("as_of", raw)
    assert parsed is not None
    return to_end_of_millisecond(parsed)


def history_of(request: Request[Any, Any, Any]) -> HistoryService:
    """The history reader on the app's query pool and the ledger's event mapper."""
    parts = parts_of(request.app.state)
    return HistoryService(parts.queries.pool, parts.ledger.mapper)


def to_history_event(event: LoggedEvent) -> HistoryEvent:
    return HistoryEvent(
        type=event.type,
        version=event.version,
        position=event.position,
        occurred_at=iso(event.occurred_at),
        actor=event.actor,
        request_id=event.request_id,
        data=event.data,
        job_id=event.job_id,
        tenant=event.tenant,
    )


@get(
    "/api/v1/jobs/{job_id:str}/events",
    guards=[may_audit],
    tags=["history"],
    responses=problem_responses(400, 401, 403, 404, 503),
)
async def job_events(
    request: Request[Any, Any, Any],
    job_id: FromPath[str],
    caller: NamedDependency[Caller],
    read_position: NamedDependency[int],
) -> JobEvents:
    """Every event of a job, oldest first (auditor or admin).

    Deleted jobs keep their history, so this answers for them too. 404 if the tenant
    never had such a job.
    """
    events = await history_of(request).job_events(caller.tenant_for_job(job_id), job_id)
    return JobEvents(job_id=job_id, events=[to_history_event(e) for e in events])


async def job_then(
    request: Request[Any, Any, Any],
    caller: Caller,
    job_id: str,
    *,
    as_of: str | None,
    version: int | None,
) -> Response[Job]:
    """The job at `version`, else as of `as_of`, rebuilt from its events (auditor or admin).

    404 before the job existed (or for a version it never had), 410 once deleted.
    """
    _require_auditor(caller)
    tenant = caller.tenant_for_job(job_id)
    history = History(parts_of(request.app.state).ledger)
    if version is not None:
        then = await sync_to_thread(history.at_version, tenant, job_id, version)
    else:
        then = await sync_to_thread(history.as_of, tenant, job_id, _as_of(as_of))
    job = to_job_then(then)
    return Response(job, headers={"ETag": f'"{job.version}"'})


async def jobs_as_of(
    request: Request[Any, Any, Any], caller: Caller, query: JobQuery, as_of: str
) -> JobList:
    """The page `query` selects of the jobs as they stood at `as_of` (auditor or admin)."""
    _require_auditor(caller)
    moment = _as_of(as_of)
    page = await history_of(request).list_as_of(query, moment)
    history = History(parts_of(request.app.state).ledger)
    thens = await sync_to_thread(history.many_as_of, page.keys, moment)
    info = PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor)
    # An interval not yet closed by a Deleted the intervals have still to take.
    alive = [then for then in thens if then.job.status is not JobStatus.DELETED]
    return JobList(jobs=[to_job_then(then) for then in alive], page_info=info)


async def stats_as_of(
    request: Request[Any, Any, Any], caller: Caller, query: StatsQuery, as_of: str
) -> StatsResult:
    """Statistics of the jobs as they stood at `as_of` (auditor or admin)."""
    _require_auditor(caller)
    return await history_of(request).stats_as_of(query, _as_of(as_of))


def to_job_then(then: Then) -> Job:
    """The API's job from a replayed one; 410 if it was deleted by then."""
    if then.job.status is JobStatus.DELETED:
        raise JobGone(then.job.job_id)
    return to_job(job_row(then.job, then.position))


HISTORY_HANDLERS: Final = (job_events,)
