"""The job list's SQL: one statement per combination of filters, built once and cached.

Each combination gets its own text (rather than `$n IS NULL OR ...`), so every
prepared statement has a plan that can use the index for its filters.

Several statuses (or job types) are read one value at a time, each page from its own
index in list order, and the pages merged: with `= any(...)` PostgreSQL 15 would walk the
whole list and filter it, which takes seconds when the values asked for are rare.

Dates select by start time while the list is ordered by creation time. A job starts
after it is created, so a page of jobs started in [start, end) walks the creation order
only between `start - LATE` and `end`. The jobs outside that window which still match
come from two partial indexes that are small by nature: jobs that waited longer than
LATE to start, and jobs stamped as started before they were created (writers' clocks
disagree). The three parts are disjoint and each is read in list order, so the answer
is exact however the clocks went, and no page walks more than the window.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from projections.rows import JOB_COLUMNS
from projections.views import CURSOR_KEY

SELECT_JOBS_PAGE: Final = "SELECT {columns} FROM jobs WHERE {where} ORDER BY {order} LIMIT {limit}"
SELECT_PAGE_OF_PARTS: Final = (
    "SELECT {columns} FROM ({parts}) AS part ORDER BY {order} LIMIT {limit}"
)
# OFFSET 0 keeps the planner from pushing the outer conditions in, so the inner query reads
# the small partial index its own conditions name (a status or a date would draw another),
# in list order: a plan made without the dates' values then still stops at the page's end.
SELECT_STRAYS: Final = (
    "SELECT {columns} FROM (SELECT {columns} FROM jobs WHERE {inner} ORDER BY {order} OFFSET 0)"
    " AS stray WHERE {where} ORDER BY {order} LIMIT {limit}"
)
SELECT_EACH: Final = (
    "SELECT {columns} FROM unnest(${values}::text[]) AS wanted(value) "
    "CROSS JOIN LATERAL ({page}) AS one ORDER BY {order} LIMIT {limit}"
)
# The page as the API shows it: each job's body (NULL when not written for the row's version)
# and then its list key for the page's cursor.
SELECT_BODIES: Final = (
    "SELECT CASE WHEN body_version = version THEN body END, {key} FROM ({page}) AS page"
    " ORDER BY {order}"
)
EACH: Final = {"statuses": "status = wanted.value", "job_types": "job_type = wanted.value"}
COLUMNS: Final = f"{JOB_COLUMNS}, body, body_version"
# Newest first by (created_at, id); across tenants the tenant breaks ties.
ORDER_OF_TENANT: Final = "created_at DESC, id DESC"
ORDER_ALL: Final = "created_at DESC, id DESC, tenant DESC"

# One value is compared with `=`, not `= any(...)`: PostgreSQL 15 reads the
# (tenant, status | job_type, created_at, id) index in list order only for `=`.
FILTERS: Final = {
    "tenant": "tenant = ${}",
    "job_type": "job_type = ${}",
    "job_types": "job_type = any(${}::text[])",
    "status": "status = ${}",
    "statuses": "status = any(${}::text[])",
    "start_date": "start_time >= ${}",  # inclusive; NULL (unstarted) never matches
    "end_date": "start_time < ${}",  # exclusive
}
AFTER_OF_TENANT: Final = "(created_at, id) < (${}, ${})"
AFTER_ALL: Final = "(created_at, id, tenant) < (${}, ${}, ${})"

# The predicates of the partial indexes in infra/schema/010_jobs.sql, spelled as they
# are there so that the planner can use them.
LATE: Final = "interval '1 hour'"
STARTED_LATE: Final = f"start_time - created_at > {LATE}"
STARTED_EARLY: Final = "start_time < created_at"


def one_plan_serves(shape: tuple[str, ...]) -> bool:
    """Whether a plan made without the parameters' values (a generic plan) serves every page
    of this shape as well as one made for them.

    Measured on a million jobs: a tenant's pages with any filters and at most one date
    read the same index in list order either way (0.2-0.6 ms). Without a tenant, or with
    both dates and more filters, the generic plan can read far more (30-600 ms).
    """
    return "tenant" in shape and not ("start_date" in shape and "end_date" in shape)


@lru_cache(maxsize=512)
def job_bodies_sql(shape: tuple[str, ...], limit: int) -> str:
    """job_page_sql's page, each job as its `body` and then `views.CURSOR_KEY`."""
    order = ORDER_OF_TENANT if "tenant" in shape else ORDER_ALL
    return SELECT_BODIES.format(key=CURSOR_KEY, page=job_page_sql(shape, limit), order=order)


@lru_cache(maxsize=512)
def job_page_sql(shape: tuple[str, ...], limit: int) -> str:
    """The page query for the filters named in `shape`, in the order of their parameters,
    reading at most `limit` jobs.

    `shape` lists any of FILTERS' names and then "after"; the cursor takes two
    parameters (three when no tenant is given).

    The limit is written into the text, not passed: PostgreSQL plans a `LIMIT $n` as if
    it would read a tenth of the rows, so the generic plan of a prepared page would look
    far dearer than it is and every execution would be planned anew (0.1-0.5 ms, as
    much as running it). With the limit in the text the generic plan is kept.
    """
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"a page reads at least one job, not {limit!r}")
    where: list[str] = []
    dates: dict[str, int] = {}
    each = next((name for name in EACH if name in shape), None)  # statuses first
    values = n = 0
    of_tenant = "tenant" in shape
    for name in shape:
        if name == "after":
            template = AFTER_OF_TENANT if of_tenant else AFTER_ALL
            count = template.count("{}")
            where.append(template.format(*range(n + 1, n + 1 + count)))
            n += count
        else:
            n += 1
            if name == each:
                values = n
            where.append(EACH[name] if name == each else FILTERS[name].format(n))
            if name in ("start_date", "end_date"):
                dates[name] = n
    order = ORDER_OF_TENANT if of_tenant else ORDER_ALL
    page = _page(where, dates, of_tenant, order, limit)
    if each is None:
        return page
    return SELECT_EACH.format(columns=COLUMNS, values=values, page=page, order=order, limit=limit)


def _page(where: list[str], dates: dict[str, int], of_tenant: bool, order: str, limit: int) -> str:
    """One page's statement, in as many parts as its dates need."""
    if not dates:
        return SELECT_JOBS_PAGE.format(
            columns=COLUMNS, where=" AND ".join(where) or "true", order=order, limit=limit
        )
    start, end = dates.get("start_date"), dates.get("end_date")
    window = [f"created_at >= ${start} - {LATE}"] if start else []
    window += [f"created_at < ${end}"] if end else []
    parts = [SELECT_JOBS_PAGE.format(
        columns=COLUMNS, where=" AND ".join(where + window), order=order, limit=limit
    )]  # fmt: skip
    tenant = where[:1] if of_tenant else []  # the tenant is the first parameter
    for stray in _strays(start, end):
        parts.append(SELECT_STRAYS.format(
            columns=COLUMNS, inner=" AND ".join(tenant + stray),
            where=" AND ".join(where[len(tenant):]), order=order, limit=limit,
        ))  # fmt: skip
    return SELECT_PAGE_OF_PARTS.format(
        columns=COLUMNS, parts=" UNION ALL ".join(f"({p})" for p in parts), order=order,
        limit=limit,
    )  # fmt: skip


def _strays(start: int | None, end: int | None) -> list[list[str]]:
    """The conditions of the jobs in range that were created outside the window.

    `start` and `end` are the parameter numbers of the dates given.
    """
    strays = []
    if start is not None:  # created before the window, yet started in range: it waited
        strays.append([f"created_at < ${start} - {LATE}", STARTED_LATE])
    if end is not None:  # created after the range, yet started in it: clocks disagree
        strays.append([f"created_at >= ${end}", STARTED_EARLY])
    return strays
