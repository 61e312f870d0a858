"""Event endpoints: one job's next event, and batches of events for many jobs."""

from __future__ import annotations

from litestar import Controller, Response
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from api.auth import may_write
from api.idempotency import write_gate
from api.problems import WRITE_PROBLEMS
from api.routing import post
from api.schemas import BatchResults, EventAccepted, EventBatch, JobEvent, to_command
from api.writes import Writer, render_recorded


class EventsController(Controller):
    path = "/api/v1"
    tags = ["events"]  # noqa: RUF012 (Litestar's declaration style)
    guards = [may_write]  # noqa: RUF012

    @post(
        "/jobs/{job_id:str}/events",
        status_code=201,
        before_request=write_gate,
        responses={
            **WRITE_PROBLEMS,
            201: ResponseSpec(EventAccepted, description="The event was recorded"),
        },
    )
    async def post_event(
        self, job_id: FromPath[str], data: JSONBody[JobEvent], writer: NamedDependency[Writer]
    ) -> Response[bytes]:
        """Record a job's next event (writer or admin), tagged by `type`.

        `started`, `progress`, `succeeded`, `failed`, `cancelled` or `deleted`; a transition
        the job's status doesn't allow is 409 with that status. `If-Match: "<version>"`
        makes the write conditional (412 on mismatch, nothing written). The answer's
        `position` can be passed as `min_position` to a read to see this write.
        """
        return await writer.record(job_id, to_command(data), render_recorded)

    @post(
        "/events/batch",
        status_code=200,
        before_request=write_gate,
        responses={
            **WRITE_PROBLEMS,
            200: ResponseSpec(BatchResults, description="One result per event, in order"),
        },
    )
    async def post_batch(
        self, data: JSONBody[EventBatch], writer: NamedDependency[Writer]
    ) -> Response[bytes]:
        """Record up to 1000 events for the tenant's jobs, in order (writer or admin).

        Each event is `{job_id, type, ...}` as for a single job, or `{job_id, type:
        "created", job_type, ...}` to create a job as `POST /jobs` does. Valid events are appended
        together even when others are refused; each result is `{job_id, version, position,
        status}` or `{job_id, error}` with the item's problem.
        """
        return await writer.batch(data.events)
