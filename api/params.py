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
from projections.rows import JobQuery

LISTED_STATUSES: Final = frozenset({JobStatus.PENDING, JobStatus.RUNNING, *FINISHED})
_ID: Final = re.compile(ID_PATTERN)

Filter = Annotated[
    list[str] | None,
    QueryParameter(description="Repeat the parameter or separate values with commas."),
]
MAX_FIRST: Final = 200
"""The largest page a list gives."""
DEFAULT_FIRST: Final = 50
First = Annotated[
    int, QueryParameter(ge=1, le=MAX_FIRST, description=f"Page size, 1 to {MAX_FIRST}.")
]
MAX_CURSOR: Final = 512
MAX_MOMENT: Final = 64
Cursor = Annotated[
    str | None,
    QueryParameter(max_length=MAX_CURSOR, description="The `endCursor` of the previous page."),
]
Moment = Annotated[
    str | None,
    QueryParameter(
        max_length=MAX_MOMENT,
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


def job_query(
    tenant: str | None,
    *,
    job_type: list[str] | None,
    status: list[str] | None,
    start_date: str | None,
    end_date: str | None,
    first: int,
    after: str | None,
) -> JobQuery:
    """The job list's query from its parameters as they came; BadField names one refused."""
    return JobQuery(
        tenant=tenant,
        job_type=split_values("job_type", job_type),
        status=statuses(status),
        start_date=moment("start_date", start_date),
        end_date=moment("end_date", end_date),
        first=first,
        after=after,
    )
