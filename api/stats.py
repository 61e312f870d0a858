"""Statistics endpoint: counts and durations from the job_stats read model."""

from __future__ import annotations

from typing import Annotated, Any, Final

from litestar import Request
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from api.auth import Caller, may_read
from api.history import stats_as_of
from api.params import Moment, moment
from api.problems import READ_PROBLEMS, BadField
from api.routing import get
from projections.queries import JobQueryService
from projections.rows import StatsQuery, StatsResult

GROUP_KEYS: Final = ("status", "job_type", "day", "tenant")
DEFAULT_GROUPS: Final = "status,job_type"

GroupBy = Annotated[
    str,
    QueryParameter(
        max_length=64,
        description="Comma-separated keys among status, job_type, day, tenant.",
    ),
]


def group_keys(raw: str) -> tuple[str, ...]:
    keys = tuple(dict.fromkeys(k.strip() for k in raw.split(",") if k.strip()))
    for key in keys:
        if key not in GROUP_KEYS:
            raise BadField("group_by", f"{key!r} is not one of {', '.join(GROUP_KEYS)}")
    return keys


@get("/api/v1/stats", guards=[may_read], tags=["stats"], responses=READ_PROBLEMS)
async def job_stats(
    caller: NamedDependency[Caller],
    queries: NamedDependency[JobQueryService],
    read_position: NamedDependency[int],
    request: Request[Any, Any, Any],
    group_by: GroupBy = DEFAULT_GROUPS,
    start_date: Moment = None,
    end_date: Moment = None,
    as_of: Moment = None,
) -> StatsResult:
    """Job counts and durations (avg, min, max of finished jobs), grouped as asked.

    `start_date` (inclusive) and `end_date` (exclusive) select jobs by their creation day.
    A global admin token counts every tenant unless it passes `tenant`. With `as_of` (auditor
    or admin) the jobs are counted as they stood at that moment.
    """
    query = StatsQuery(
        tenant=caller.tenant_filter(),
        group_by=group_keys(group_by),
        start_date=moment("start_date", start_date),
        end_date=moment("end_date", end_date),
    )
    if as_of is not None:
        return await stats_as_of(request, caller, query, as_of)
    return await queries.stats(query)
