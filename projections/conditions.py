"""The SQL of job searches: fields, conditions, sorts and pages, with values as parameters.

Field names are checked against FIELDS and map keys against KEY_PATTERN before anything
reaches SQL text; every value travels as a parameter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final, Literal

import msgspec

from ledger.errors import InvalidCommand

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


class Params:
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


def quoted_name(name: str) -> str:
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


def condition_sql(cond: Condition, params: Params) -> str:
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


def where_sql(
    tenant: str | None,
    all_of: Sequence[Condition],
    any_of: Sequence[Condition],
    keyword: str | None,
    params: Params,
) -> str:
    """The WHERE clause of a search: the tenant, every `all_of`, one of `any_of`, and a
    keyword found in the id, name or job type."""
    where = [] if tenant is None else [f"tenant = {params.add(tenant)}"]
    where += [condition_sql(c, params) for c in all_of]
    if any_of:
        where.append("(" + " OR ".join(condition_sql(c, params) for c in any_of) + ")")
    if keyword:
        like = params.add(_like(keyword))
        where.append(f"(id ILIKE {like} OR name ILIKE {like} OR job_type ILIKE {like})")
    return " AND ".join(where) or "true"


def order_sql(sort: Sequence[SortKey]) -> str:
    if not sort:
        return "created_at DESC, id DESC, tenant DESC"
    keys = []
    for key in sort:
        expr, _ = field_expr(key.field)
        keys.append(f"{expr} {'DESC NULLS LAST' if key.desc else 'ASC NULLS FIRST'}")
    return ", ".join([*keys, "id", "tenant"])


def page_sql(offset: int, limit: int | None, params: Params) -> str:
    if offset < 0:
        raise InvalidCommand("offset", "must not be negative")
    if limit is not None and not 0 < limit <= MAX_LIMIT:
        raise InvalidCommand("limit", f"must be between 1 and {MAX_LIMIT}")
    text = f" OFFSET {params.add(offset)}"
    return text + (f" LIMIT {params.add(limit)}" if limit is not None else "")
