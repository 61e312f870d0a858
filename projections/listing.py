"""The job list's SQL: one statement per combination of filters, built once and cached.

Each combination gets its own text (rather than `$n IS NULL OR ...`), so every
prepared statement has a plan that can use the index for its filters.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from projections.rows import JobRow

SELECT_JOBS_PAGE: Final = "SELECT {columns} FROM jobs WHERE {where} ORDER BY {order} LIMIT ${limit}"
COLUMNS: Final = ", ".join(JobRow.__struct_fields__)
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


@lru_cache(maxsize=128)
def job_page_sql(shape: tuple[str, ...]) -> str:
    """The page query for the filters named in `shape`, in the order of their parameters.

    `shape` lists any of FILTERS' names and then "after"; the cursor takes two
    parameters (three when no tenant is given), and the last parameter is the limit.
    """
    where: list[str] = []
    n = 0
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
    return SELECT_JOBS_PAGE.format(
        columns=COLUMNS,
        where=" AND ".join(where) or "true",
        order=ORDER_OF_TENANT if of_tenant else ORDER_ALL,
        limit=n + 1,
    )
