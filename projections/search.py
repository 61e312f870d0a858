"""JobSearchService: filtered, sorted, offset-paged reads and SQL aggregations of `jobs`.

The vendor dialects ask for more than the native list: conditions on any listed field
(labels, parameters and counters included), any-of groups, sorts, offset pages with a
total, and grouped statistics. They are answered here, in SQL (built by
projections.conditions and projections.aggregation), on the query service's pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import asyncpg
import msgspec

from ledger.errors import InvalidCommand
from projections.aggregation import (
    Aggregate,
    CountStage,
    Group,
    GroupKey,
    JobAggregation,
    LimitStage,
    ProjectStage,
    SkipStage,
    SortStage,
    Stage,
    aggregation_sql,
)
from projections.conditions import (
    MAX_LIMIT,
    Condition,
    Params,
    SortKey,
    order_sql,
    page_sql,
    where_sql,
)
from projections.rows import JOB_COLUMNS, JobRow

__all__ = [
    "MAX_LIMIT", "Aggregate", "AggregationResult", "Condition", "CountStage", "Group",
    "GroupKey", "JobAggregation", "JobSearch", "JobSearchService", "LimitStage",
    "ProjectStage", "SearchPage", "SkipStage", "SortKey", "SortStage", "Stage", "minutes_left",
]  # fmt: skip


class JobSearch(msgspec.Struct, kw_only=True, frozen=True):
    """Jobs matching every `all_of` and (when given) at least one `any_of` condition."""

    tenant: str | None
    all_of: tuple[Condition, ...] = ()
    any_of: tuple[Condition, ...] = ()
    keyword: str | None = None
    """A case-insensitive substring of the id, name or job type."""
    sort: tuple[SortKey, ...] = ()
    """Default: newest first. The id always breaks ties."""
    offset: int = 0
    limit: int | None = 100
    rows: bool = True
    total: bool = False


class SearchPage(msgspec.Struct, kw_only=True):
    jobs: list[JobRow]
    total: int | None


class AggregationResult(msgspec.Struct, kw_only=True):
    results: list[object]
    total: int | None


class JobSearchService:
    """Searches and aggregations of the `jobs` read model, on the query service's pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def search(self, search: JobSearch) -> SearchPage:
        """A page of matching jobs (if `rows`) and their number (if `total`)."""
        params = Params()
        where = where_sql(search.tenant, search.all_of, search.any_of, search.keyword, params)
        jobs: list[JobRow] = []
        total: int | None = None
        async with self.pool.acquire() as conn:
            with _refused_by_postgres():
                if search.total:
                    count = f"SELECT count(*) FROM jobs WHERE {where}"
                    total = await conn.fetchval(count, *params.values)
                if search.rows:
                    page = page_sql(search.offset, search.limit, params)
                    rows = await conn.fetch(
                        f"SELECT {JOB_COLUMNS} FROM jobs WHERE {where} "
                        f"ORDER BY {order_sql(search.sort)}{page}",
                        *params.values,
                    )
                    jobs = [JobRow(**dict(r)) for r in rows]
        return SearchPage(jobs=jobs, total=total)

    async def aggregate(self, query: JobAggregation) -> AggregationResult:
        """The aggregation's rows (as JSON objects, or values for `distinct`), paged."""
        params = Params()
        sql, shape = aggregation_sql(query, params)
        total = None
        async with self.pool.acquire() as conn:
            with _refused_by_postgres():
                if query.limit is not None:
                    count = f"SELECT count(*) FROM ({sql}) AS t"
                    total = await conn.fetchval(count, *params.values)
                page = page_sql(query.offset, query.limit, params)
                rows = await conn.fetch(f"SELECT {shape} FROM ({sql}) AS t{page}", *params.values)
        return AggregationResult(results=[r[0] for r in rows], total=total)


@contextmanager
def _refused_by_postgres() -> Iterator[None]:
    """What PostgreSQL refuses in a caller's query (a bad pattern, a name no stage
    made) is the caller's mistake, not the service's."""
    try:
        yield
    except (
        asyncpg.DataError,
        asyncpg.exceptions.UndefinedColumnError,
        asyncpg.exceptions.GroupingError,
    ) as exc:
        raise InvalidCommand("query", exc.args[0] if exc.args else type(exc).__name__) from None


def minutes_left(row: JobRow, now: datetime) -> int | None:
    """Minutes a running job needs to finish at its rate so far; 0 once finished,
    None before it starts or reports progress."""
    if row.end_time is not None:
        return 0
    if row.start_time is None or row.progress <= 0:
        return None
    elapsed = (now - row.start_time).total_seconds()
    remaining = elapsed * (100 - row.progress) / row.progress
    return int(-(-remaining // 60))
