"""Query parameters shared by the read endpoints: their limits, and the parsing of each."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Final

from litestar.openapi.spec import Example
from litestar.params import QueryParameter

from api.problems import BadField
from api.schemas import ID_PATTERN
from ledger.domain import FINISHED, JobStatus

LISTED_STATUSES: Final = frozenset({JobStatus.PENDING, JobStatus.RUNNING, *FINISHED})
_ID: Final = re.compile(ID_PATTERN)

Filter = Annotated[
    list[str] | None,
    QueryParameter(description="Repeat the parameter or separate values with commas."),
]
First = Annotated[int, QueryParameter(ge=1, le=200, description="Page size, 1 to 200.")]
Cursor = Annotated[
    str | None,
    QueryParameter(max_length=512, description="The `endCursor` of the previous page."),
]
Moment = Annotated[
    str | None,
    QueryParameter(
        max_length=64,
        description="ISO 8601 date or date-time; without an offset it is UTC.",
        examples=[Example(value="2024-02-01T10:00:00Z")],
    ),
]


def split_values(field: str, values: list[str] | None) -> tuple[str, ...]:
    """`a,b&x=c` style values, each checked to be a plausible identifier."""
    found = tuple(v for raw in values or () for v in raw.split(",") if v)
    for value in found:
        if not _ID.match(value):
            raise BadField(field, f"{shown(value)} is not a valid {field}")
    return found


def shown(value: str, limit: int = 64) -> str:
    """A client's value as quoted in a problem: cut short, so a huge one isn't sent back."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} chars)"


def statuses(values: list[str] | None) -> tuple[str, ...]:
    found = split_values("status", values)
    for value in found:
        if value not in LISTED_STATUSES:
            allowed = ", ".join(sorted(LISTED_STATUSES))
            raise BadField("status", f"{value!r} is not one of {allowed}")
    return found


def moment(field: str, raw: str | None) -> datetime | None:
    """An ISO 8601 date or date-time query value, in UTC (naive values are UTC)."""
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadField(field, f"{raw!r} is not an ISO 8601 date or date-time") from None
