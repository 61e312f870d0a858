"""The SQL of job statistics: group, count, sort, limit, skip and project stages, or the
distinct values of a field, over the jobs a search selects (for the dialects' stat calls)."""

from __future__ import annotations

import re
from typing import Final, Literal

import msgspec

from ledger.errors import InvalidCommand
from projections.conditions import (
    Condition,
    Kind,
    Params,
    SortKey,
    field_expr,
    quoted_name,
    where_sql,
)
from projections.rows import JOB_COLUMNS


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
    """Statistics over the jobs the conditions select: a pipeline of stages starting with
    a Group or a CountStage, or the distinct values of one field; then a page."""

    tenant: str | None
    all_of: tuple[Condition, ...] = ()
    any_of: tuple[Condition, ...] = ()
    keyword: str | None = None
    stages: tuple[Stage, ...] = ()
    distinct: str | None = None
    offset: int = 0
    limit: int | None = None


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
        selects.append(f"{expr} AS {quoted_name(key.name)}")
        grouped.append(expr)
    for agg in group.fields:
        if agg.op == "count":
            selects.append(f"count(*) AS {quoted_name(agg.name)}")
            continue
        if agg.field is None:
            raise InvalidCommand("key", f"{agg.op} needs a key")
        expr, kind = field_expr(agg.field)
        if kind is Kind.JSON:
            expr = f"(CASE jsonb_typeof({expr}) WHEN 'number' THEN ({expr})::numeric END)"
        elif kind is not Kind.INT and agg.op in ("sum", "average"):
            raise InvalidCommand("key", f"{agg.field} is not a number")
        selects.append(f"{_AGGREGATES[agg.op]}({expr}) AS {quoted_name(agg.name)}")
    if not selects:
        raise InvalidCommand("group", "needs keys or fields")
    group_by = f" GROUP BY {', '.join(grouped)}" if grouped else ""
    return f"SELECT {', '.join(selects)} FROM ({source}) AS j{group_by}"


def _stage_sql(stage: Stage, source: str, params: Params, first: bool) -> str:
    if first != isinstance(stage, Group | CountStage):
        raise InvalidCommand("aggregate", "must start with a group or a count stage")
    match stage:
        case Group():
            return _group_sql(stage, source)
        case CountStage():
            return f"SELECT count(*) AS {quoted_name(stage.name)} FROM ({source}) AS s"
        case SortStage():
            keys = ", ".join(
                f"{quoted_name(k.field)} {'DESC NULLS LAST' if k.desc else 'ASC NULLS FIRST'}"
                for k in stage.keys
            )
            return f"SELECT * FROM ({source}) AS s ORDER BY {keys}"
        case LimitStage():
            return f"SELECT * FROM ({source}) AS s LIMIT {params.add(max(stage.count, 0))}"
        case SkipStage():
            return f"SELECT * FROM ({source}) AS s OFFSET {params.add(max(stage.count, 0))}"
        case ProjectStage():
            names = ", ".join(
                f"{quoted_name(old)} AS {quoted_name(new)}" for old, new in stage.fields
            )
            return f"SELECT {names} FROM ({source}) AS s"


def aggregation_sql(query: JobAggregation, params: Params) -> tuple[str, str]:
    """The aggregation's statement and the expression giving each result as JSON."""
    where = where_sql(query.tenant, query.all_of, query.any_of, query.keyword, params)
    source = f"SELECT {JOB_COLUMNS} FROM jobs WHERE {where}"
    if query.distinct is not None:
        expr, _ = field_expr(query.distinct)
        sql = (
            f"SELECT DISTINCT {expr} AS value FROM ({source}) AS j "
            f"WHERE {expr} IS NOT NULL ORDER BY value"
        )
        return sql, "to_jsonb(t.value)"
    if not query.stages:
        raise InvalidCommand("aggregate", "an aggregate or distinct is required")
    sql = source
    for index, stage in enumerate(query.stages):
        sql = _stage_sql(stage, sql, params, first=index == 0)
    return sql, "to_jsonb(t)"
