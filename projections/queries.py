"""JobQueryService: the one reader of the read models, on an asyncpg pool."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, date, datetime, timedelta
from typing import Final, TypedDict

import asyncpg
import msgspec

from ledger.errors import InvalidCommand, JobGone, JobNotFound
from ledger.settings import Settings, parse_database_url
from projections.cursors import decode_cursor, encode_cursor_at
from projections.listing import job_bodies_sql, one_plan_serves
from projections.rows import (
    JOB_COLUMNS,
    DurationStats,
    JobPage,
    JobQuery,
    JobRow,
    StatsGroup,
    StatsQuery,
    StatsResult,
)
from projections.tracking import PROJECTIONS_CHANNEL
from projections.views import RUNNING_VIEW, job_body, view_json_sql

MAX_PAGE: Final = 1000
GROUP_KEYS: Final = ("status", "job_type", "day", "tenant")
POLL: Final = 0.25
"""Longest wait between position checks when a NOTIFY from the runner goes missing."""
RECENT: Final = 0.1
"""How old a position `recent_position` answers with may be, in seconds."""

SELECT_JOB: Final = f"SELECT {JOB_COLUMNS} FROM jobs WHERE tenant = $1 AND id = $2"
SELECT_JOBS: Final = (
    f"SELECT {JOB_COLUMNS} FROM jobs JOIN unnest($1::text[], $2::text[]) AS k (tenant, id)"
    " USING (tenant, id)"
)
SELECT_JOB_BODY: Final = (
    "SELECT CASE WHEN body_version = version THEN body END, version"
    " FROM jobs WHERE tenant = $1 AND id = $2"
)
SELECT_DELETED: Final = "SELECT 1 FROM deleted_jobs WHERE tenant = $1 AND id = $2"
RUNNING_ORDER: Final = "start_time DESC, id DESC"
RUNNING_JSON: Final = (
    # Each job's stored body while it is the row's, else the same bytes written out here.
    # The array's order is the aggregate's own: a subquery's is not promised to be kept.
    "SELECT '['::bytea || coalesce(string_agg(CASE WHEN body_version = version THEN body"
    " ELSE convert_to({job}, 'UTF8') END, ','::bytea ORDER BY {order}), ''::bytea)"
    " || ']'::bytea FROM (SELECT tenant, {fields}, body, body_version, version"
    " FROM running_jobs WHERE status = 'running'{where} ORDER BY {order} LIMIT {limit})"
    " AS running"
)
SELECT_RUNNING: Final = RUNNING_JSON.format(
    job=view_json_sql(RUNNING_VIEW), fields=", ".join(RUNNING_VIEW), where="",
    order=f"{RUNNING_ORDER}, tenant DESC", limit="$1",
)  # fmt: skip
SELECT_RUNNING_OF_TENANT: Final = RUNNING_JSON.format(
    job=view_json_sql(RUNNING_VIEW), fields=", ".join(RUNNING_VIEW), where=" AND tenant = $1",
    order=RUNNING_ORDER, limit="$2",
)  # fmt: skip
SELECT_POSITION: Final = (
    "SELECT least("
    + ", ".join(
        f"coalesce((SELECT notification_id FROM {t}_tracking WHERE application_name = 'ledger'), 0)"
        for t in ("jobs", "running_jobs", "job_stats", "job_status_intervals")
    )
    + ") AS position"
)
SELECT_HEAD: Final = "SELECT coalesce(max(notification_id), 0) FROM ledger_events"
GENERIC: Final = "force_generic_plan"
STATS_TEMPLATE: Final = (
    "SELECT {keys}sum(count)::bigint AS count, sum(duration_count)::bigint AS duration_count, "
    "sum(duration_sum)::bigint AS duration_sum, min(duration_min) AS duration_min, "
    "max(duration_max) AS duration_max FROM job_stats WHERE {where}{group}"
)


class _Connection(asyncpg.Connection):
    """A pooled connection released without asyncpg's reset query.

    The reset (RESET ALL, UNLISTEN, CLOSE ALL, advisory unlocks) costs a round trip
    on every release; this pool's users set no session state, hold no cursors or
    advisory locks, and listen on connections of their own.
    """

    def get_reset_query(self) -> str:
        return ""


class JobQueryService:
    """Serves every read from the projections."""

    def __init__(self, pool: asyncpg.Pool, pages: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.pages = pages
        self.settings = settings
        self._listener: asyncpg.Connection | None = None
        self._listener_lock = asyncio.Lock()
        self._advanced = asyncio.Event()
        self._reached = 0
        self._reached_at = -RECENT
        self._reading = asyncio.Lock()

    @classmethod
    async def connect(cls, settings: Settings) -> JobQueryService:
        """Open the pools on `settings.database_url` with search_path = settings.database_schema.

        The list pages that one plan serves (`listing.one_plan_serves`) have a pool of their
        own whose sessions always run a statement's generic plan: PostgreSQL would plan a
        page with a date anew on every execution (0.3-0.5 ms, more than running it), since
        it guesses the generic plan's cost from default selectivities. Other reads keep
        plans made for their values.
        """
        args = _connect_args(settings)
        pool = await asyncpg.create_pool(
            min_size=settings.pool_min_size, max_size=settings.pool_max_size,
            init=_init_connection, connection_class=_Connection, **args,
        )  # fmt: skip
        args["server_settings"] = {**args["server_settings"], "plan_cache_mode": GENERIC}
        try:
            pages = await asyncpg.create_pool(
                min_size=1, max_size=settings.pool_max_size,
                init=_init_connection, connection_class=_Connection, **args,
            )  # fmt: skip
        except BaseException:
            await pool.close()
            raise
        return cls(pool, pages, settings)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
        await self.pages.close()
        await self.pool.close()

    async def list_jobs(self, query: JobQuery) -> JobPage[msgspec.Raw]:
        """Newest first by (created_at, id); keyset pagination. Each job is its body:
        the JSON `GET /api/v1/jobs/{id}` answers (`views.job_body`).

        A bad cursor raises InvalidCommand('after', ...).
        """
        if not 1 <= query.first <= MAX_PAGE:
            raise InvalidCommand("first", f"must be between 1 and {MAX_PAGE}")
        after = decode_cursor(query.after) if query.after is not None else None
        params: list[object] = []
        shape = []
        for name, value in (
            ("tenant", query.tenant),
            *_values("job_type", "job_types", query.job_type),
            *_values("status", "statuses", query.status),
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
        pool = self.pages if one_plan_serves(key := tuple(shape)) else self.pool
        # One more than the page says whether there is a next page.
        rows = await pool.fetch(job_bodies_sql(key, query.first + 1), *params)
        page = rows[: query.first]
        bodies = [r[0] for r in page]
        if None in bodies:
            bodies = await self._render_missing(page)
        # Each job's list key follows its body: (microseconds, id, tenant).
        last = page[-1][1:] if page else None
        return JobPage(
            jobs=[msgspec.Raw(body) for body in bodies],
            has_next_page=len(rows) > query.first,
            end_cursor=encode_cursor_at(*last) if last else None,
        )

    async def _render_missing(self, page: list[asyncpg.Record]) -> list[bytes]:
        """The page's bodies, those not written for their row's version (by an older
        release, until the job's next change or a rebuild) rendered from their rows."""
        missing = [(r[3], r[2]) for r in page if r[0] is None]  # (tenant, id)
        tenants, ids = [t for t, _ in missing], [i for _, i in missing]
        rows = await self.pool.fetch(SELECT_JOBS, tenants, ids)
        rendered = {(row.tenant, row.id): job_body(row) for row in (JobRow(*r) for r in rows)}
        # A job deleted since the page was read has left it.
        return [
            body
            for r in page
            if (body := r[0] if r[0] is not None else rendered.get((r[3], r[2]))) is not None
        ]

    async def get_job(self, tenant: str, job_id: str) -> JobRow:
        """The job's row; JobNotFound if never created, JobGone if deleted."""
        if "\x00" in tenant or "\x00" in job_id:
            # PostgreSQL text cannot hold U+0000 (it would refuse the query): no such job.
            raise JobNotFound(job_id)
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(SELECT_JOB, tenant, job_id)
            if row is not None:
                return JobRow(*row)
            if await conn.fetchval(SELECT_DELETED, tenant, job_id):
                raise JobGone(job_id)
        raise JobNotFound(job_id)

    async def get_job_body(self, tenant: str, job_id: str) -> tuple[bytes, int]:
        """The job's answer as stored (`views.job_body`) and its version; rendered from its
        row if its body was not written for that version. JobNotFound, JobGone as get_job."""
        if "\x00" in tenant or "\x00" in job_id:
            raise JobNotFound(job_id)
        async with self.pool.acquire() as conn:
            stored = await conn.fetchrow(SELECT_JOB_BODY, tenant, job_id)
        if stored is None or stored[0] is None:
            row = await self.get_job(tenant, job_id)
            return job_body(row), row.version
        return stored[0], stored[1]

    async def running_jobs(self, tenant: str | None, limit: int = 1000) -> bytes:
        """The running set, newest start first, as the JSON array of its jobs (each a
        `RunningJob`, its fields those of `views.RUNNING_VIEW`), made by PostgreSQL."""
        if tenant is None:
            value: bytes = await self.pool.fetchval(SELECT_RUNNING, limit)
        else:
            value = await self.pool.fetchval(SELECT_RUNNING_OF_TENANT, tenant, limit)
        return value

    async def stats(self, query: StatsQuery) -> StatsResult:
        """Counts and durations from job_stats only (never scans jobs).

        Dates select the per-day buckets (the jobs' UTC creation day) that overlap
        [start_date, end_date).
        """
        keys = _group_keys(query.group_by)
        where, params = ["true"], list[object]()
        if query.tenant is not None:
            params.append(query.tenant)
            where.append(f"tenant = ${len(params)}")
        if query.start_date is not None:
            params.append(_day_of(query.start_date))
            where.append(f"day >= ${len(params)}")
        if query.end_date is not None:
            params.append(_day_after(query.end_date))
            where.append(f"day < ${len(params)}")
        sql = STATS_TEMPLATE.format(
            keys="".join(f"{k}, " for k in keys),
            where=" AND ".join(where),
            group=f" GROUP BY {', '.join(keys)} ORDER BY {', '.join(keys)}" if keys else "",
        )
        groups = [stats_group(r, keys) for r in await self.pool.fetch(sql, *params) if r["count"]]
        return StatsResult(groups=groups, total=sum(g.count for g in groups))

    async def position(self) -> int:
        """The lowest position every projection has reached (0 before any event)."""
        read_at = asyncio.get_running_loop().time()
        value: int = await self.pool.fetchval(SELECT_POSITION)
        if value >= self._reached:
            self._reached, self._reached_at = value, read_at
        return value

    async def recent_position(self) -> int:
        """A position every projection has reached, read at most RECENT seconds ago.

        Projections only move forward, so a position read before a query is a lower
        bound of what the query sees; concurrent reads share one reading.
        """
        loop = asyncio.get_running_loop()
        if loop.time() - self._reached_at < RECENT:
            return self._reached
        async with self._reading:
            if loop.time() - self._reached_at >= RECENT:
                await self.position()
            return self._reached

    async def head(self) -> int:
        """The position of the newest event in the log (0 if empty)."""
        value: int = await self.pool.fetchval(SELECT_HEAD)
        return value

    async def wait_for_position(self, position: int, timeout: float) -> bool:
        """Wait until every projection has reached `position`; False on timeout.

        Wakes on the runner's NOTIFY after each batch, and checks at least every
        POLL seconds in case a notification is lost.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self._listen()
        while True:
            advanced = self._advanced  # taken before the check, so no wake-up is missed
            if await self.position() >= position:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(advanced.wait(), min(remaining, POLL))

    async def _listen(self) -> None:
        async with self._listener_lock:
            if self._listener is not None and not self._listener.is_closed():
                return
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(**_connect_args(self.settings))
                await conn.add_listener(PROJECTIONS_CHANNEL, self._on_advanced)
            except (OSError, asyncpg.PostgresError):
                if conn is not None:  # a standby refuses LISTEN: don't leak the connection
                    await conn.close()
                return  # polling alone still answers, only later
            self._listener = conn

    def _on_advanced(self, *_: object) -> None:
        advanced, self._advanced = self._advanced, asyncio.Event()
        advanced.set()


class _ConnectArgs(TypedDict):
    host: str
    port: int
    user: str
    password: str | None
    database: str
    server_settings: dict[str, str]


def _connect_args(settings: Settings) -> _ConnectArgs:
    assert settings.database_url is not None
    params = parse_database_url(settings.database_url)
    return _ConnectArgs(
        host=params.host, port=params.port, user=params.user,
        password=params.password or None, database=params.dbname,
        # No JIT: a prepared statement's generic plan can be costed past jit_above_cost
        # (a LIMIT $n is guessed at a tenth of the table), and compiling then takes 20 to
        # 60 ms of every execution of a read that itself takes under one.
        server_settings={"search_path": settings.database_schema, "timezone": "UTC", "jit": "off"},
    )  # fmt: skip


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=_encode_json, decoder=msgspec.json.decode
        )


def _encode_json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _values(one: str, many: str, values: tuple[str, ...]) -> list[tuple[str, str | list[str]]]:
    """A list filter's shape entry and parameter: `one` for a value, `many` for several.

    Repeats are dropped: several values are read one by one, and a repeat would read twice.
    """
    distinct = list(dict.fromkeys(values))
    if len(distinct) == 1:
        return [(one, distinct[0])]
    return [(many, distinct)] if distinct else []


def _group_keys(group_by: tuple[str, ...]) -> list[str]:
    unknown = [k for k in group_by if k not in GROUP_KEYS]
    if unknown:
        raise InvalidCommand("group_by", f"unknown {unknown[0]!r}; use {', '.join(GROUP_KEYS)}")
    return list(dict.fromkeys(group_by))


def stats_group(record: asyncpg.Record, keys: list[str]) -> StatsGroup:
    """A stats group from a row of summed job_stats buckets."""
    count, total = record["duration_count"], record["duration_sum"]
    group = StatsGroup(
        count=record["count"],
        duration_ms=DurationStats(
            avg=total / count if count else None,
            min=record["duration_min"],
            max=record["duration_max"],
        ),
    )
    for key in keys:
        value = record[key]
        setattr(group, key, value.isoformat() if isinstance(value, date) else value)
    return group


def as_utc(moment: datetime | None) -> datetime | None:
    """`moment` in UTC; a naive time is taken as UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _day_of(moment: datetime) -> date:
    utc = as_utc(moment)
    assert utc is not None
    return utc.date()


def _day_after(moment: datetime) -> date:
    """The first day not to select when `moment` is an exclusive end."""
    utc = as_utc(moment)
    assert utc is not None
    midnight = utc.replace(hour=0, minute=0, second=0, microsecond=0)
    return utc.date() if utc == midnight else utc.date() + timedelta(days=1)
