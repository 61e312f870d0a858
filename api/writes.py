"""Writes through the ledger, each answer rendered once and stored with its events.

A write to a job this process has just written waits for its group commit on the event
loop (`JobLedger.record_now`); any other runs the ledger in a worker thread (it is
synchronous). With an Idempotency-Key the answer is rendered inside the transaction
that appends the events; a refusal (4xx) is stored on its own; a concurrent request
with the same key that committed first is replayed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import msgspec
from eventsourcing.persistence import IntegrityError
from litestar import Request, Response
from litestar.di import NamedDependency
from msgspec import UNSET

from api.auth import Caller
from api.idempotency import (
    KEY_STATE,
    json_response,
    refuse,
    remember,
    replay_first,
    success_headers,
)
from api.parts import parts_of
from api.problems import ApiError, BadField, problem_of
from api.schemas import (
    BatchItem,
    BatchResult,
    BatchResults,
    CreateJob,
    EventAccepted,
    to_batch_command,
    to_job,
)
from ledger.application import Written, new_job_id
from ledger.commands import JobCommand, NewJob
from ledger.domain import Job
from ledger.errors import LedgerError
from ledger.idempotency import Answer, IdempotencyKey, IdempotencyKeyTaken
from projections.rows import job_row

if TYPE_CHECKING:
    from ledger.application import AnswerFor, JobLedger

_ETAG: Final = re.compile(r'^(?:W/)?"(?P<quoted>\d{1,18})"$|^(?P<bare>\d{1,18})$')
_encode: Final = msgspec.json.Encoder().encode

Outcomes = Sequence[Written | LedgerError]
Perform = Callable[[tuple[IdempotencyKey, "AnswerFor"] | None], Outcomes]
WriteNow = Callable[[tuple[IdempotencyKey, "AnswerFor"] | None], Awaitable[Outcomes | None]]
"""A write on the event loop; None when it must be performed in a thread instead."""


def render_created(outcomes: Outcomes) -> Answer:
    (written,) = outcomes
    assert isinstance(written, Written) and isinstance(written.job, Job)
    return Answer(201, _encode(to_job(job_row(written.job, written.position))))


def render_recorded(outcomes: Outcomes) -> Answer:
    (w,) = outcomes
    assert isinstance(w, Written)
    accepted = EventAccepted(
        id=w.job.job_id, version=w.version, position=w.position, status=w.job.status.value
    )
    return Answer(201, _encode(accepted))


def render_cancelled(outcomes: Outcomes) -> Answer:
    return Answer(204, b"")


def render_batch(job_ids: Sequence[str]) -> Callable[[Outcomes], Answer]:
    def render(outcomes: Outcomes) -> Answer:
        results: list[BatchResult] = [
            BatchResult(
                job_id=job_id, version=o.version, position=o.position, status=o.job.status.value
            )
            if isinstance(o, Written)
            else BatchResult(job_id=job_id, error=problem_of(o).document())
            for job_id, o in zip(job_ids, outcomes, strict=True)
        ]
        return Answer(200, _encode(BatchResults(results=results)))

    return render


class Writer:
    """Dependency: the one write of a request, for its caller, under its idempotency key."""

    def __init__(self, request: Request[Any, Any, Any], caller: Caller) -> None:
        self.request = request
        self.caller = caller
        parts = parts_of(request.app.state)
        self.ledger: JobLedger = parts.ledger
        self.writers = parts.writers
        key = request.state.get(KEY_STATE)
        self.key: IdempotencyKey | None = key if isinstance(key, IdempotencyKey) else None

    async def create(self, body: CreateJob) -> Response[bytes]:
        """Create the job `body` describes: 201 with the job."""

        def perform(answer: tuple[IdempotencyKey, AnswerFor] | None) -> Outcomes:
            tenant = self.caller.tenant_for_create(None if body.tenant is UNSET else body.tenant)
            new = NewJob(
                job_id=new_job_id() if body.id is UNSET else body.id,
                job_type=body.job_type,
                name=body.name,
                parameters=body.parameters,
                labels=body.labels,
                total_records=body.total_records,
                max_attempts=body.max_attempts,
            )
            return [self.ledger.create_job(tenant, new, self.caller.context, answer=answer)]

        return await self._write(perform, render_created)

    async def record(
        self, job_id: str, command: JobCommand, render: Callable[[Outcomes], Answer]
    ) -> Response[bytes]:
        """Apply one command to a job, under If-Match when the request sends it."""

        def perform(answer: tuple[IdempotencyKey, AnswerFor] | None) -> Outcomes:
            tenant = self.caller.tenant_for_job(job_id)
            expected = self.expected_version()
            written = self.ledger.record(
                tenant,
                job_id,
                command,
                self.caller.context,
                expected_version=expected,
                answer=answer,
            )
            return [written]

        async def now(answer: tuple[IdempotencyKey, AnswerFor] | None) -> Outcomes | None:
            pending = self.ledger.record_now(
                self.caller.tenant_for_job(job_id),
                job_id,
                command,
                self.caller.context,
                expected_version=self.expected_version(),
                answer=answer,
            )
            if pending is None:
                return None
            try:
                # A client that goes away cancels only this wait: the append goes on.
                return [await pending]
            except IntegrityError:
                return None  # another process wrote to the job first: `record` decides again

        return await self._write(perform, render, now)

    async def batch(self, items: Sequence[BatchItem]) -> Response[bytes]:
        """Apply every item in order; each is accepted or refused alone."""
        job_ids = [item.job_id for item in items]

        def perform(answer: tuple[IdempotencyKey, AnswerFor] | None) -> Outcomes:
            tenant = self.caller.tenant_for_batch()
            commands = [(item.job_id, to_batch_command(item)) for item in items]
            return self.ledger.record_batch(tenant, commands, self.caller.context, answer=answer)

        return await self._write(perform, render_batch(job_ids))

    def expected_version(self) -> int | None:
        """The version `If-Match` names, if any (`*` matches any version)."""
        header = self.request.headers.get("if-match")
        if header is None or header.strip() == "*":
            return None
        match = _ETAG.match(header.strip())
        if match is None:
            raise BadField("If-Match", 'must be a job version in quotes, e.g. "3"')
        return int(match["quoted"] or match["bare"])

    async def _write(
        self,
        perform: Perform,
        render: Callable[[Outcomes], Answer],
        now: WriteNow | None = None,
    ) -> Response[bytes]:
        rendered: list[Answer] = []

        def keep(outcomes: Outcomes) -> Answer:
            rendered.append(render(outcomes))
            return rendered[-1]

        keyed = (self.key, keep) if self.key else None
        try:
            # A write the ledger can take without blocking waits here for its group
            # commit: no thread of its own, and no hand-offs to and from one.
            outcomes = await now(keyed) if now is not None else None
            if outcomes is None:
                # The default executor has a handful of threads; a write's thread waits
                # for its group commit, so writes get a pool large enough to fill them.
                outcomes = await asyncio.get_running_loop().run_in_executor(
                    self.writers, perform, keyed
                )
        except IdempotencyKeyTaken:
            assert self.key is not None
            return await replay_first(self.request, self.key)
        except (LedgerError, ApiError) as error:
            return await refuse(self.request, self.key, error)
        answer = rendered[-1] if rendered else render(outcomes)
        if self.key is not None and not any(isinstance(o, Written) for o in outcomes):
            # Nothing was appended, so no transaction stored the answer: store it alone.
            return await remember(self.request, self.key, answer, {})
        return json_response(answer, success_headers(self.request, answer))


async def provide_writer(
    request: Request[Any, Any, Any], caller: NamedDependency[Caller]
) -> Writer:
    """Dependency: the request's writer."""
    return Writer(request, caller)
