"""Jobs endpoints: list, read, progress, the running set, create and cancel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import msgspec
from litestar import Controller, Request, Response
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from api.auth import Caller, may_read, may_write
from api.history import Version, job_then, jobs_as_of
from api.idempotency import write_gate
from api.params import DEFAULT_FIRST, Cursor, Filter, First, Moment, job_query
from api.problems import JOB_READ_PROBLEMS, READ_PROBLEMS, WRITE_PROBLEMS
from api.routing import delete, get, post
from api.schemas import (
    CreateJob,
    Job,
    JobList,
    JobProgress,
    PageInfo,
    RunningJob,
    RunningJobs,
    to_progress,
)
from api.writes import Writer, render_cancelled
from ledger.commands import Cancel
from projections.queries import JobQueryService
from projections.rows import JobPage


def job_list(page: JobPage[msgspec.Raw]) -> JobList:
    info = PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor)
    # Each job is its stored body, a Job's JSON, which msgspec writes out as it is.
    return JobList(jobs=cast("list[Job]", page.jobs), page_info=info)


class JobsController(Controller):
    path = "/api/v1/jobs"
    tags = ["jobs"]  # noqa: RUF012 (Litestar's declaration style)

    @get("/", guards=[may_read], responses=READ_PROBLEMS)
    async def list_jobs(
        self,
        caller: NamedDependency[Caller],
        queries: NamedDependency[JobQueryService],
        read_position: NamedDependency[int],
        request: Request[Any, Any, Any],
        job_type: Filter = None,
        status: Filter = None,
        start_date: Moment = None,
        end_date: Moment = None,
        first: First = DEFAULT_FIRST,
        after: Cursor = None,
        as_of: Moment = None,
    ) -> JobList:
        """List jobs, newest first (by creation time, then id), a page at a time.

        `start_date` (inclusive) and `end_date` (exclusive) select by start time and leave
        out jobs not yet started. Pass a page's `pageInfo.endCursor` as `after` for the next.
        A global admin token sees every tenant unless it passes `tenant`. With `as_of` (auditor
        or admin) the jobs as they stood at that moment.
        """
        query = job_query(
            caller.tenant_filter(),
            job_type=job_type,
            status=status,
            start_date=start_date,
            end_date=end_date,
            first=first,
            after=after,
        )
        if as_of is not None:
            return await jobs_as_of(request, caller, query, as_of)
        return job_list(await queries.list_jobs(query))

    @get("/running", guards=[may_read], responses=READ_PROBLEMS)
    async def running_jobs(
        self,
        caller: NamedDependency[Caller],
        queries: NamedDependency[JobQueryService],
        read_position: NamedDependency[int],
    ) -> RunningJobs:
        """The jobs running now, the most recently started first."""
        jobs = await queries.running_jobs(caller.tenant_filter())
        # The array PostgreSQL wrote, of RunningJob objects: msgspec writes it out as it is.
        return RunningJobs(jobs=cast("list[RunningJob]", msgspec.Raw(jobs)))

    @get("/{job_id:str}", guards=[may_read], responses=JOB_READ_PROBLEMS)
    async def get_job(
        self,
        job_id: FromPath[str],
        caller: NamedDependency[Caller],
        queries: NamedDependency[JobQueryService],
        read_position: NamedDependency[int],
        request: Request[Any, Any, Any],
        as_of: Moment = None,
        version: Version = None,
    ) -> Response[Job]:
        """One job with every detail. Its `ETag` is the job's version, for If-Match.

        404 if the tenant has no such job, 410 once it was deleted. With `version` or `as_of`
        (auditor or admin) the job as it stood then, replayed from its events; 404 before it
        existed.
        """
        if as_of is not None or version is not None:
            return await job_then(request, caller, job_id, as_of=as_of, version=version)
        body, version = await queries.get_job_body(caller.tenant_for_job(job_id), job_id)
        # The stored body is a Job's JSON, which msgspec writes out as it is.
        return Response(cast("Job", msgspec.Raw(body)), headers={"ETag": f'"{version}"'})

    @get("/{job_id:str}/progress", guards=[may_read], responses=JOB_READ_PROBLEMS)
    async def get_progress(
        self,
        job_id: FromPath[str],
        caller: NamedDependency[Caller],
        queries: NamedDependency[JobQueryService],
        read_position: NamedDependency[int],
    ) -> JobProgress:
        """A job's progress; `elapsed_ms` runs from its first start while it runs, is its
        duration once it ended, and is null before it starts."""
        row = await queries.get_job(caller.tenant_for_job(job_id), job_id)
        return to_progress(row, datetime.now(UTC))

    @post(
        "/",
        guards=[may_write],
        before_request=write_gate,
        status_code=201,
        responses={
            **WRITE_PROBLEMS,
            201: ResponseSpec(Job, description="The job, with Location and ETag"),
        },
    )
    async def create_job(
        self, data: JSONBody[CreateJob], writer: NamedDependency[Writer]
    ) -> Response[bytes]:
        """Create a pending job (writer or admin).

        Without `id` the server makes one. An id the tenant already has is 409. A global
        admin token names the tenant in the body (`tenant`). Send `Idempotency-Key` to make
        retries safe.
        """
        return await writer.create(data)

    @delete(
        "/{job_id:str}",
        guards=[may_write],
        before_request=write_gate,
        status_code=204,
        # The handler's declared type would document a JSON body; a 204 has none.
        responses={**WRITE_PROBLEMS, 204: ResponseSpec(None, description="The job is cancelled")},
    )
    async def cancel_job(
        self, job_id: FromPath[str], writer: NamedDependency[Writer]
    ) -> Response[None]:
        """Cancel a pending or running job (writer or admin): 204.

        Records already processed stay processed. A finished job is 409; `If-Match` with
        the job's version makes the cancel conditional (412 on mismatch).
        """
        answer = await writer.record(job_id, Cancel(), render_cancelled)
        # Litestar wants a 204 handler typed as bodiless; refusals do carry a problem body.
        return cast("Response[None]", answer)
