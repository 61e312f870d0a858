"""Paging through a job list to its end, for the tests of what lists hold."""

from __future__ import annotations

import msgspec

from api.schemas import Job
from projections.queries import JobQueryService
from projections.rows import JobQuery


async def every_page(queries: JobQueryService, query: JobQuery) -> list[str]:
    """Tenant/id of every job the query lists, page after page by cursor."""
    found: list[str] = []
    after = None
    while True:
        page = await queries.list_jobs(msgspec.structs.replace(query, after=after), Job)
        found += [f"{job.tenant}/{job.id}" for job in page.jobs]
        if not page.has_next_page:
            return found
        after = page.end_cursor
