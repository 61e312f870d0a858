"""A job as it stood at a version or a moment, rebuilt by replaying its events.

Reads go through the library's repository (its event store and mapper), never a
read model, so the answer is the log's own word. Positions, which domain events
do not carry, come from the event table.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import takewhile
from typing import TYPE_CHECKING, Final

from eventsourcing.application import AggregateNotFoundError, project_aggregate
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier

from ledger.domain import Job, JobStatus, stream_id
from ledger.errors import JobNotFound

if TYPE_CHECKING:
    from ledger.application import JobLedger

SELECT_POSITIONS: Final = (
    "SELECT originator_id, originator_version, notification_id FROM {schema}.{events} "
    "WHERE originator_id = any(%s::text[])"
)


@dataclass(frozen=True, slots=True)
class Then:
    """A job as it stood, and the position of the last event that made it so."""

    job: Job
    position: int


@dataclass(frozen=True, slots=True)
class Step:
    """One event of a job's timeline, and the job just after it."""

    event: Job.Event
    position: int
    job: Job


class History:
    """Past states of jobs, from the event store of `app`."""

    def __init__(self, app: JobLedger) -> None:
        self.app = app
        recorder = app.recorder
        assert isinstance(recorder, PostgresApplicationRecorder)
        self._datastore = recorder.datastore
        self._select_positions = SQL(SELECT_POSITIONS).format(
            schema=Identifier(recorder.datastore.schema or "public"),
            events=Identifier(recorder.events_table_name),
        )

    def at_version(self, tenant: str, job_id: str, version: int) -> Then:
        """The job after its first `version` events; JobNotFound if it never had that many."""
        stream = stream_id(tenant, job_id)
        try:
            job: Job = self.app.repository.get(stream, version=version)
        except AggregateNotFoundError:
            raise JobNotFound(job_id) from None
        if job.version != version:
            raise JobNotFound(job_id)
        return Then(job, self.positions([stream])[(stream, version)])

    def as_of(self, tenant: str, job_id: str, moment: datetime) -> Then:
        """The job as its events up to `moment` made it; JobNotFound if created later."""
        return self.many_as_of([(tenant, job_id)], moment)[0]

    def many_as_of(self, keys: Sequence[tuple[str, str]], moment: datetime) -> list[Then]:
        """Each (tenant, job id) as it stood at `moment`, in order; JobNotFound for any
        that did not exist yet."""
        streams = [stream_id(tenant, job_id) for tenant, job_id in keys]
        jobs = []
        for (_, job_id), stream in zip(keys, streams, strict=True):
            try:
                job: Job = self.app.repository.get(stream, projector_func=until(moment))
            except AggregateNotFoundError:
                raise JobNotFound(job_id) from None
            jobs.append(job)
        positions = self.positions(streams) if streams else {}
        return [Then(job, positions[(job.id, job.version)]) for job in jobs]

    def timeline(self, tenant: str, job_id: str, moment: datetime | None = None) -> list[Step]:
        """Every event of the job (up to `moment`) with the job as it stood after each."""
        stream = stream_id(tenant, job_id)
        positions = self.positions([stream])
        steps: list[Step] = []
        job: Job | None = None
        for event in self.app.events.get(stream):
            assert isinstance(event, Job.Event)
            if moment is not None and event.timestamp > moment:
                break
            job = event.mutate(job)
            assert job is not None
            steps.append(Step(event, positions[(stream, event.originator_version)], _copy(job)))
        if not steps:
            raise JobNotFound(job_id)
        return steps

    def positions(self, streams: Sequence[str]) -> dict[tuple[str, int], int]:
        """The global position of each event of `streams`, by (stream id, version)."""
        with self._datastore.transaction(commit=False) as curs:
            curs.execute(self._select_positions, (list(streams),))
            return {
                (row["originator_id"], row["originator_version"]): row["notification_id"]
                for row in curs.fetchall()
            }


Projector = Callable[[Job | None, Iterable[Job.Event]], Job | None]


def to_end_of_millisecond(moment: datetime) -> datetime:
    """The last instant of the millisecond `moment` falls in.

    Times are shown to the millisecond, so "as of 10:00:00.123" means after everything
    that happened within that millisecond, the event shown with that time included.
    """
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000 + 999)


def until(moment: datetime) -> Projector:
    """A repository projector that stops before the first event after `moment`."""

    def project(initial: Job | None, events: Iterable[Job.Event]) -> Job | None:
        happened: Iterator[Job.Event] = takewhile(lambda e: e.timestamp <= moment, events)
        return project_aggregate(initial, happened)

    return project


def is_gone(job: Job) -> bool:
    """True once the job was deleted."""
    return job.status is JobStatus.DELETED


def _copy(job: Job) -> Job:
    # Events replace the job's collections rather than mutate them: shallow is enough.
    return copy.copy(job)
