"""Paging through a job list to its end, for the tests of what lists hold."""

from __future__ import annotations

import msgspec

from api.schemas import Job
from projections.queries import JobQueryService
from projections.rows import JobPage, JobQuery


async def list_page(queries: JobQueryService, query: JobQuery) -> JobPage[Job]:
    """A page of the list, each job decoded from the body the list serves."""
    page = await queries.list_jobs(query)
    return JobPage(
        jobs=[msgspec.json.decode(body, type=Job) for body in page.jobs],
        has_next_page=page.has_next_page,
        end_cursor=page.end_cursor,
    )


async def every_page(queries: JobQueryService, query: JobQuery) -> list[str]:
    """Tenant/id of every job the query lists, page after page by cursor."""
    found: list[str] = []
    after = None
    while True:
        page = await list_page(queries, msgspec.structs.replace(query, after=after))
        found += [f"{job.tenant}/{job.id}" for job in page.jobs]
        if not page.has_next_page:
            return found
        after = page.end_cursor
