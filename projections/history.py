"""HistoryService: the log itself and the status intervals, read for auditors.

A job's events and the tenant's feed come straight from the event table, decoded
by the write side's own mapper. Lists and statistics "as of" a moment come from
`job_status_intervals` (projections.intervals), never from replaying the log.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

import msgspec
from eventsourcing.persistence import StoredEvent

from ledger.domain import Job, split_stream_id, stream_id
from ledger.errors import InvalidCommand, JobNotFound
from projections.cursors import Cursor, decode_cursor, encode_cursor
from projections.queries import as_utc, stats_group
from projections.rows import JobQuery, StatsQuery, StatsResult

if TYPE_CHECKING:
    import asyncpg
    from eventsourcing.persistence import Mapper

MAX_FEED_PAGE: Final = 1000
MAX_PAGE: Final = 1000
GROUP_KEYS: Final = ("status", "job_type", "day", "tenant")

EVENT_TYPES: Final[dict[type[Job.Event], str]] = {
    Job.Created: "created",
    Job.Started: "started",
    Job.Progressed: "progress",
    Job.Succeeded: "succeeded",
    Job.Failed: "failed",
    Job.Cancelled: "cancelled",
    Job.Deleted: "deleted",
}
"""Event classes by the names the write API gives them."""
ENVELOPE: Final = frozenset(
    {"originator_id", "originator_version", "timestamp", "actor", "request_id", "originator_topic"}
)
"""Fields every event has, answered beside `data` rather than in it."""

EVENT_COLUMNS: Final = "originator_id, originator_version, topic, state, notification_id"
SELECT_JOB_EVENTS: Final = (
    f"SELECT {EVENT_COLUMNS} FROM ledger_events WHERE originator_id = $1 "
    "ORDER BY originator_version"
)
# starts_with, not LIKE: tenants may contain `_`, a LIKE wildcard.
SELECT_FEED_OF_TENANT: Final = (
    f"SELECT {EVENT_COLUMNS} FROM ledger_events "
    "WHERE notification_id > $1 AND starts_with(originator_id, $2) "
    "ORDER BY notification_id LIMIT $3"
)
SELECT_FEED: Final = (
    f"SELECT {EVENT_COLUMNS} FROM ledger_events WHERE notification_id > $1 "
    "ORDER BY notification_id LIMIT $2"
)

LIVE: Final = "valid_from <= ${0} AND (valid_to IS NULL OR valid_to > ${0}) AND status <> 'deleted'"
FILTERS: Final = {
    "tenant": "tenant = ${}",
    "job_type": "job_type = any(${}::text[])",
    "status": "status = any(${}::text[])",
    "start_date": "start_time >= ${}",
    "end_date": "start_time < ${}",
}
AFTER_OF_TENANT: Final = "(created_at, id) < (${}, ${})"
AFTER_ALL: Final = "(created_at, id, tenant) < (${}, ${}, ${})"
STATS_AS_OF: Final = (
    "SELECT {keys}count(*) AS count, count(duration_ms) AS duration_count, "
    "coalesce(sum(duration_ms), 0)::bigint AS duration_sum, min(duration_ms) AS duration_min, "
    "max(duration_ms) AS duration_max FROM ("
    "SELECT tenant, job_type, status, (created_at AT TIME ZONE 'UTC')::date AS day, duration_ms "
    "FROM job_status_intervals WHERE {live}) AS live WHERE {where}{group}"
)


class LoggedEvent(msgspec.Struct, kw_only=True):
    """One stored event of a job, as auditors read it."""

    tenant: str
    job_id: str
    type: str
    version: int
    position: int
    occurred_at: datetime
    actor: str
    request_id: str
    data: dict[str, Any]


class AsOfPage(msgspec.Struct, kw_only=True):
    """A page of the job list as it stood: the jobs' keys, in list order."""

    keys: list[tuple[str, str]]
    has_next_page: bool
    end_cursor: str | None


class HistoryService:
    """Reads the event log and the status intervals on the query service's pool."""

    def __init__(self, pool: asyncpg.Pool, mapper: Mapper[str]) -> None:
        self.pool = pool
        self.mapper = mapper

    async def job_events(self, tenant: str, job_id: str) -> list[LoggedEvent]:
        """Every event of the job in order (deleted jobs keep theirs); JobNotFound if none."""
        rows = await self.pool.fetch(SELECT_JOB_EVENTS, stream_id(tenant, job_id))
        if not rows:
            raise JobNotFound(job_id)
        return [self.logged(row) for row in rows]

    async def feed(self, tenant: str | None, after: int, limit: int) -> list[LoggedEvent]:
        """Up to `limit` events after position `after`, in global order (one tenant's, or
        every tenant's for None)."""
        if not 1 <= limit <= MAX_FEED_PAGE:
            raise InvalidCommand("limit", f"must be between 1 and {MAX_FEED_PAGE}")
        if tenant is None:
            rows = await self.pool.fetch(SELECT_FEED, after, limit)
        else:
            rows = await self.pool.fetch(SELECT_FEED_OF_TENANT, after, f"{tenant}/", limit)
        return [self.logged(row) for row in rows]

    async def list_as_of(self, query: JobQuery, moment: datetime) -> AsOfPage:
        """The page of jobs `query` selects as they stood at `moment`, newest first."""
        if not 1 <= query.first <= MAX_PAGE:
            raise InvalidCommand("first", f"must be between 1 and {MAX_PAGE}")
        after = decode_cursor(query.after) if query.after is not None else None
        shape: list[str] = []
        params: list[object] = [as_utc(moment)]
        for name, value in (
            ("tenant", query.tenant),
            ("job_type", list(query.job_type) or None),
            ("status", list(query.status) or None),
            ("start_date", as_utc(query.start_date)),
            ("end_date", as_utc(query.end_date)),
        ):
            if value is not None:
                shape.append(name)
                params.append(value)
        if after is not None:
            shape.append("after")
            params += [after.created_at, after.id]
            if query.tenant is None:
                params.append(after.tenant)
        params.append(query.first + 1)
        rows = await self.pool.fetch(as_of_page_sql(tuple(shape)), *params)
        page = rows[: query.first]
        last = page[-1] if page else None
        return AsOfPage(
            keys=[(r["tenant"], r["id"]) for r in page],
            has_next_page=len(rows) > query.first,
            end_cursor=None
            if last is None
            else encode_cursor(Cursor(last["created_at"], last["id"], last["tenant"])),
        )

    async def stats_as_of(self, query: StatsQuery, moment: datetime) -> StatsResult:
        """Counts and durations of the jobs as they stood at `moment`, grouped as asked."""
        unknown = [k for k in query.group_by if k not in GROUP_KEYS]
        if unknown:
            raise InvalidCommand("group_by", f"unknown {unknown[0]!r}")
        keys = list(dict.fromkeys(query.group_by))
        params: list[object] = [as_utc(moment)]
        where = ["true"]
        if query.tenant is not None:
            params.append(query.tenant)
            where.append(f"tenant = ${len(params)}")
        if query.start_date is not None:
            params.append(_day_of(query.start_date))
            where.append(f"day >= ${len(params)}")
        if query.end_date is not None:
            params.append(_day_after(query.end_date))
            where.append(f"day < ${len(params)}")
        sql = STATS_AS_OF.format(
            keys="".join(f"{k}, " for k in keys),
            live=LIVE.format(1),
            where=" AND ".join(where),
            group=f" GROUP BY {', '.join(keys)} ORDER BY {', '.join(keys)}" if keys else "",
        )
        groups = [stats_group(r, keys) for r in await self.pool.fetch(sql, *params) if r["count"]]
        return StatsResult(groups=groups, total=sum(g.count for g in groups))

    def logged(self, row: asyncpg.Record) -> LoggedEvent:
        """A stored event row, decoded by the write side's mapper."""
        event = self.mapper.to_domain_event(
            StoredEvent(
                originator_id=row["originator_id"],
                originator_version=row["originator_version"],
                topic=row["topic"],
                state=bytes(row["state"]),
            )
        )
        assert isinstance(event, Job.Event)
        tenant, job_id = split_stream_id(event.originator_id)
        return LoggedEvent(
            tenant=tenant,
            job_id=job_id,
            type=EVENT_TYPES.get(type(event), type(event).__name__.lower()),
            version=event.originator_version,
            position=row["notification_id"],
            occurred_at=event.timestamp,
            actor=event.actor,
            request_id=event.request_id,
            data={
                f.name: getattr(event, f.name)
                for f in dataclasses.fields(event)
                if f.name not in ENVELOPE
            },
        )


@lru_cache(maxsize=128)
def as_of_page_sql(shape: tuple[str, ...]) -> str:
    """The as-of page query for the filters in `shape` ($1 is the moment, the last the limit)."""
    where = [LIVE.format(1)]
    n = 1
    of_tenant = "tenant" in shape
    for name in shape:
        if name == "after":
            template = AFTER_OF_TENANT if of_tenant else AFTER_ALL
            count = template.count("{}")
            where.append(template.format(*range(n + 1, n + 1 + count)))
            n += count
        else:
            n += 1
            where.append(FILTERS[name].format(n))
    order = "created_at DESC, id DESC" + ("" if of_tenant else ", tenant DESC")
    return (
        "SELECT tenant, id, created_at FROM job_status_intervals "
        f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ${n + 1}"
    )


def _day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _day_after(moment: datetime) -> date:
    """The first day not to select when `moment` is an exclusive end."""
    utc = moment.astimezone(UTC)
    midnight = utc.replace(hour=0, minute=0, second=0, microsecond=0)
    return utc.date() if utc == midnight else utc.date() + timedelta(days=1)
