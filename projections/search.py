"""JobSearchService: filtered, sorted, offset-paged reads and SQL aggregations of `jobs`.

The vendor dialects ask for more than the native list: conditions on any listed field
(labels, parameters and counters included), any-of groups, sorts, offset pages with a
total, and grouped statistics. They are answered here, in SQL, on the query service's
pool. Field names are checked against FIELDS and label keys against KEY_PATTERN before
anything reaches SQL text; every value travels as a parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final, Literal

import asyncpg
import msgspec

from ledger.errors import InvalidCommand
from projections.rows import JobRow

MAX_LIMIT: Final = 1000
KEY_PATTERN: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
NAME_PATTERN: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class Kind(StrEnum):
    TEXT = "text"
    INT = "int"
    TIME = "time"
    JSON = "json"


FIELDS: Final[dict[str, Kind]] = {
    "tenant": Kind.TEXT, "id": Kind.TEXT, "job_type": Kind.TEXT, "name": Kind.TEXT,
    "status": Kind.TEXT, "current_step": Kind.TEXT, "error_message": Kind.TEXT,
    "created_by": Kind.TEXT, "progress": Kind.INT, "records_processed": Kind.INT,
    "total_records": Kind.INT, "records_created": Kind.INT, "records_updated": Kind.INT,
    "records_deleted": Kind.INT, "duration_ms": Kind.INT, "attempt": Kind.INT,
    "max_attempts": Kind.INT, "version": Kind.INT, "start_time": Kind.TIME,
    "end_time": Kind.TIME, "created_at": Kind.TIME, "updated_at": Kind.TIME,
}  # fmt: skip
"""Plain columns; `labels.<key>` (text), `parameters.<key>` (JSON) and `counters.<key>`
(integer) name one entry of those maps."""

Op = Literal[
    "eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "exists", "contains",
    "not_contains", "contains_any", "not_contains_any", "contains_all", "regex", "regex_any",
]  # fmt: skip


class Condition(msgspec.Struct, frozen=True):
    """`field op value`. Text `contains` is case-insensitive; `contains_all` holds when
    a JSON array field holds every value listed; `exists` takes a bool."""

    field: str
    op: Op
    value: object = None


class SortKey(msgspec.Struct, frozen=True):
    field: str
    desc: bool = False


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


class GroupKey(msgspec.Struct, frozen=True):
    field: str
    name: str
    date_format: str | None = None
    """strftime-style (%Y %m %d %H %M %S) for time fields."""


class Aggregate(msgspec.Struct, frozen=True):
    op: Literal["count", "sum", "average", "max", "min"]
    name: str
    field: str | None = None


class Group(msgspec.Struct, frozen=True, tag="group"):
    keys: tuple[GroupKey, ...]
    fields: tuple[Aggregate, ...]


class CountStage(msgspec.Struct, frozen=True, tag="count"):
    name: str


class SortStage(msgspec.Struct, frozen=True, tag="sort"):
    keys: tuple[SortKey, ...]
    """By the names the earlier stages gave."""


class LimitStage(msgspec.Struct, frozen=True, tag="limit"):
    count: int


class SkipStage(msgspec.Struct, frozen=True, tag="skip"):
    count: int


class ProjectStage(msgspec.Struct, frozen=True, tag="project"):
    fields: tuple[tuple[str, str], ...]
    """(name from an earlier stage, name to give it)."""


Stage = Group | CountStage | SortStage | LimitStage | SkipStage | ProjectStage


class JobAggregation(msgspec.Struct, kw_only=True, frozen=True):
    """Statistics over the jobs a JobSearch's conditions select: a pipeline of stages
    starting with a Group or a CountStage, or the distinct values of one field."""

    search: JobSearch
    stages: tuple[Stage, ...] = ()
    distinct: str | None = None
    offset: int = 0
    limit: int | None = None


class AggregationResult(msgspec.Struct, kw_only=True):
    results: list[object]
    total: int | None


class _Params:
    """Positional parameters, numbered as they are added."""

    def __init__(self) -> None:
        self.values: list[object] = []

    def add(self, value: object) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _literal(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise InvalidCommand("key", f"{key!r} is not a valid key")
    return f"'{key}'"


def _name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise InvalidCommand("name", f"{name!r} is not a valid name")
    return f'"{name}"'


def field_expr(field: str) -> tuple[str, Kind]:
    """The SQL expression of a field and its kind; InvalidCommand if unknown."""
    if field in FIELDS:
        return field, FIELDS[field]
    head, dot, key = field.partition(".")
    if dot and key:
        match head:
            case "labels":
                return f"(labels ->> {_literal(key)})", Kind.TEXT
            case "parameters":
                return f"(parameters -> {_literal(key)})", Kind.JSON
            case "counters":
                return f"((counters ->> {_literal(key)})::bigint)", Kind.INT
    raise InvalidCommand("key", f"{field!r} is not a field jobs can be queried by")


def _typed(field: str, kind: Kind, value: object) -> object:
    """`value` as the parameter type of `kind`; InvalidCommand if it cannot be one."""
    match kind:
        case Kind.TEXT if isinstance(value, str):
            return value
        case Kind.INT if isinstance(value, int) and not isinstance(value, bool):
            return value
        case Kind.TIME if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        case Kind.TIME if isinstance(value, str):
            try:
                return _typed(field, kind, datetime.fromisoformat(value.replace("Z", "+00:00")))
            except ValueError:
                pass
        case Kind.JSON:
            return msgspec.json.encode(value).decode()
    raise InvalidCommand("value", f"{value!r} does not fit {field} ({kind})")


def _listed(field: str, kind: Kind, value: object) -> list[object]:
    if not isinstance(value, list | tuple):
        raise InvalidCommand("value", f"the value for {field} must be a list")
    return [_typed(field, kind, v) for v in value]


_SQL_TYPES: Final = {Kind.TEXT: "text", Kind.INT: "bigint", Kind.TIME: "timestamptz"}
_COMPARE: Final = {"eq": "=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def _like(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidCommand("value", f"{value!r} is not text")
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _text_of(expr: str, kind: Kind) -> str:
    return f"({expr} #>> '{{}}')" if kind is Kind.JSON else f"{expr}::text"


def condition_sql(cond: Condition, params: _Params) -> str:
    """One condition as SQL, its values added to `params`."""
    expr, kind = field_expr(cond.field)
    op, value = cond.op, cond.value
    jsonb = "::text::jsonb" if kind is Kind.JSON else ""
    match op:
        case "exists":
            return f"({expr} IS {'NOT ' if value else ''}NULL)"
        case "eq" | "lt" | "lte" | "gt" | "gte":
            return f"({expr} {_COMPARE[op]} {params.add(_typed(cond.field, kind, value))}{jsonb})"
        case "ne":
            return f"({expr} IS DISTINCT FROM {params.add(_typed(cond.field, kind, value))}{jsonb})"
        case "in" | "not_in":
            values = _listed(cond.field, kind, value)
            if kind is Kind.JSON:
                found = f"({expr} = any({params.add(values)}::text[]::jsonb[]))"
            else:
                found = f"({expr} = any({params.add(values)}::{_SQL_TYPES[kind]}[]))"
            return found if op == "in" else f"NOT coalesce({found}, false)"
        case "contains" | "not_contains":
            found = f"({_text_of(expr, kind)} ILIKE {params.add(_like(value))})"
            return found if op == "contains" else f"NOT coalesce({found}, false)"
        case "contains_any" | "not_contains_any":
            if not isinstance(value, list | tuple):
                raise InvalidCommand("value", f"the value for {cond.field} must be a list")
            patterns = [_like(v) for v in value]
            found = f"({_text_of(expr, kind)} ILIKE any({params.add(patterns)}::text[]))"
            return found if op == "contains_any" else f"NOT coalesce({found}, false)"
        case "contains_all":
            if kind is not Kind.JSON:
                raise InvalidCommand("operator", f"{cond.field} is not a list")
            wanted = value if isinstance(value, list | tuple) else [value]
            return f"({expr} @> {params.add(msgspec.json.encode(wanted).decode())}::text::jsonb)"
        case "regex":
            if not isinstance(value, str):
                raise InvalidCommand("value", f"{value!r} is not a pattern")
            return f"({_text_of(expr, kind)} ~ {params.add(value)})"
        case "regex_any":
            regexes = _listed(cond.field, Kind.TEXT, value)
            return f"({_text_of(expr, kind)} ~ any({params.add(regexes)}::text[]))"
    raise InvalidCommand("operator", f"unknown operator {op!r}")  # pragma: no cover


def where_sql(search: JobSearch, params: _Params) -> str:
    where = [] if search.tenant is None else [f"tenant = {params.add(search.tenant)}"]
    where += [condition_sql(c, params) for c in search.all_of]
    if search.any_of:
        where.append("(" + " OR ".join(condition_sql(c, params) for c in search.any_of) + ")")
    if search.keyword:
        like = params.add(_like(search.keyword))
        where.append(f"(id ILIKE {like} OR name ILIKE {like} OR job_type ILIKE {like})")
    return " AND ".join(where) or "true"


def _order_sql(sort: Sequence[SortKey]) -> str:
    if not sort:
        return "created_at DESC, id DESC, tenant DESC"
    keys = []
    for key in sort:
        expr, _ = field_expr(key.field)
        keys.append(f"{expr} {'DESC NULLS LAST' if key.desc else 'ASC NULLS FIRST'}")
    return ", ".join([*keys, "id", "tenant"])


def _page(offset: int, limit: int | None, params: _Params) -> str:
    if offset < 0:
        raise InvalidCommand("offset", "must not be negative")
    if limit is not None and not 0 < limit <= MAX_LIMIT:
        raise InvalidCommand("limit", f"must be between 1 and {MAX_LIMIT}")
    text = f" OFFSET {params.add(offset)}"
    return text + (f" LIMIT {params.add(limit)}" if limit is not None else "")


_STRFTIME: Final = {"%Y": "YYYY", "%m": "MM", "%d": "DD", "%H": "HH24", "%M": "MI", "%S": "SS"}


def _date_format(expr: str, fmt: str) -> str:
    def convert(part: str) -> str:
        if part in _STRFTIME:
            return _STRFTIME[part]
        if part.startswith("%"):
            raise InvalidCommand("date_format", f"{part} is not supported")
        if not re.fullmatch(r"[ :/T-]*", part):
            raise InvalidCommand("date_format", f"{part!r} is not supported")
        return part

    pattern = "".join(convert(p) for p in re.split(r"(%.)", fmt) if p)
    return f"to_char({expr} AT TIME ZONE 'UTC', '{pattern}')"


_AGGREGATES: Final = {"sum": "sum", "average": "avg", "max": "max", "min": "min"}


def _group_sql(group: Group, source: str) -> str:
    selects, grouped = [], []
    for key in group.keys:
        expr, kind = field_expr(key.field)
        if key.date_format:
            if kind is not Kind.TIME:
                raise InvalidCommand("date_format", f"{key.field} is not a time")
            expr = _date_format(expr, key.date_format)
        selects.append(f"{expr} AS {_name(key.name)}")
        grouped.append(expr)
    for agg in group.fields:
        if agg.op == "count":
            selects.append(f"count(*) AS {_name(agg.name)}")
            continue
        if agg.field is None:
            raise InvalidCommand("key", f"{agg.op} needs a key")
        expr, kind = field_expr(agg.field)
        if kind is Kind.JSON:
            expr = f"(CASE jsonb_typeof({expr}) WHEN 'number' THEN ({expr})::numeric END)"
        elif kind is not Kind.INT and agg.op in ("sum", "average"):
            raise InvalidCommand("key", f"{agg.field} is not a number")
        selects.append(f"{_AGGREGATES[agg.op]}({expr}) AS {_name(agg.name)}")
    if not selects:
        raise InvalidCommand("group", "needs keys or fields")
    group_by = f" GROUP BY {', '.join(grouped)}" if grouped else ""
    return f"SELECT {', '.join(selects)} FROM ({source}) AS j{group_by}"


def _stage_sql(stage: Stage, source: str, params: _Params, first: bool) -> str:
    if first != isinstance(stage, Group | CountStage):
        raise InvalidCommand("aggregate", "must start with a group or a count stage")
    match stage:
        case Group():
            return _group_sql(stage, source)
        case CountStage():
            return f"SELECT count(*) AS {_name(stage.name)} FROM ({source}) AS s"
        case SortStage():
            keys = ", ".join(
                f"{_name(k.field)} {'DESC NULLS LAST' if k.desc else 'ASC NULLS FIRST'}"
                for k in stage.keys
            )
            return f"SELECT * FROM ({source}) AS s ORDER BY {keys}"
        case LimitStage():
            return f"SELECT * FROM ({source}) AS s LIMIT {params.add(max(stage.count, 0))}"
        case SkipStage():
            return f"SELECT * FROM ({source}) AS s OFFSET {params.add(max(stage.count, 0))}"
        case ProjectStage():
            names = ", ".join(f"{_name(old)} AS {_name(new)}" for old, new in stage.fields)
            return f"SELECT {names} FROM ({source}) AS s"


class JobSearchService:
    """Searches and aggregations of the `jobs` read model, on the query service's pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def search(self, search: JobSearch) -> SearchPage:
        """A page of matching jobs (if `rows`) and their number (if `total`)."""
        params = _Params()
        where = where_sql(search, params)
        jobs: list[JobRow] = []
        total: int | None = None
        async with self.pool.acquire() as conn:
            with _refused_by_postgres():
                if search.total:
                    total = await conn.fetchval(
                        f"SELECT count(*) FROM jobs WHERE {where}", *params.values
                    )
                if search.rows:
                    page = _page(search.offset, search.limit, params)
                    rows = await conn.fetch(
                        f"SELECT {', '.join(JobRow.__struct_fields__)} FROM jobs WHERE {where} "
                        f"ORDER BY {_order_sql(search.sort)}{page}",
                        *params.values,
                    )
                    jobs = [JobRow(**dict(r)) for r in rows]
        return SearchPage(jobs=jobs, total=total)

    async def aggregate(self, query: JobAggregation) -> AggregationResult:
        """The aggregation's rows (as JSON objects, or values for `distinct`), paged."""
        params = _Params()
        source = f"SELECT * FROM jobs WHERE {where_sql(query.search, params)}"
        if query.distinct is not None:
            expr, _ = field_expr(query.distinct)
            sql = (
                f"SELECT DISTINCT {expr} AS value FROM ({source}) AS j "
                f"WHERE {expr} IS NOT NULL ORDER BY value"
            )
            shape = "to_jsonb(t.value)"
        elif query.stages:
            sql = source
            for index, stage in enumerate(query.stages):
                sql = _stage_sql(stage, sql, params, first=index == 0)
            shape = "to_jsonb(t)"
        else:
            raise InvalidCommand("aggregate", "an aggregate or distinct is required")
        total = None
        async with self.pool.acquire() as conn:
            with _refused_by_postgres():
                if query.limit is not None:
                    total = await conn.fetchval(
                        f"SELECT count(*) FROM ({sql}) AS t", *params.values
                    )
                page = _page(query.offset, query.limit, params)
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
