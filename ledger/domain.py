"""The Job aggregate: one event stream per job, and the state machine that guards it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from eventsourcing.domain import (
    BaseAggregate,
    CanInitAggregate,
    CanMutateAggregate,
    CanSnapshotAggregate,
    MetaDomainEvent,
)

from ledger.errors import InvalidCommand, InvalidTransition

JsonObject = dict[str, Any]


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DELETED = "deleted"


FINISHED: Final = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})

# Where each status may go next. A failed job returns to running only while
# attempts remain, a guard that `Job.start` adds on top of this table.
ALLOWED: Final[dict[JobStatus, frozenset[JobStatus]]] = {
    JobStatus.PENDING: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.DELETED}),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.RUNNING,
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
            JobStatus.DELETED,
        }
    ),
    JobStatus.COMPLETED: frozenset({JobStatus.DELETED}),
    JobStatus.FAILED: frozenset({JobStatus.RUNNING, JobStatus.DELETED}),
    JobStatus.CANCELLED: frozenset({JobStatus.DELETED}),
    JobStatus.DELETED: frozenset(),
}

RECORD_COUNTERS: Final = (
    "records_processed",
    "records_created",
    "records_updated",
    "records_deleted",
)

SEPARATOR: Final = "/"


def stream_id(tenant: str, job_id: str) -> str:
    """The event stream of a job: tenant and id, since ids are unique per tenant only."""
    return f"{tenant}{SEPARATOR}{job_id}"


def split_stream_id(originator_id: str) -> tuple[str, str]:
    """The (tenant, job id) of a stream; tenants never contain the separator."""
    tenant, _, job_id = originator_id.partition(SEPARATOR)
    return tenant, job_id


@dataclass(frozen=True, kw_only=True)
class LedgerEvent(metaclass=MetaDomainEvent):
    """Base of stored events: a text stream id (the library's default is a UUID)."""

    originator_id: str
    originator_version: int
    timestamp: datetime


class Job(BaseAggregate[str]):
    """A job's state, rebuilt from its events.

    Commands check their guards, then trigger one event; each event's `apply`
    holds the state change and runs again on every replay, so it stays a pure
    function of the job and the event (no clock, no I/O).
    """

    @dataclass(frozen=True, kw_only=True)
    class Event(LedgerEvent, CanMutateAggregate[str]):
        actor: str
        request_id: str

    @dataclass(frozen=True, kw_only=True)
    class Created(Event, CanInitAggregate[str]):
        originator_topic: str
        tenant: str
        job_id: str
        job_type: str
        name: str | None
        parameters: JsonObject
        labels: dict[str, str]
        total_records: int | None
        max_attempts: int

        def apply(self, job: Job) -> None:
            job.tenant = self.tenant
            job.job_id = self.job_id
            job.job_type = self.job_type
            job.name = self.name
            job.parameters = self.parameters
            job.labels = self.labels
            job.total_records = self.total_records
            job.max_attempts = self.max_attempts
            job.status = JobStatus.PENDING
            job.attempt = 0
            job.progress = 0
            job.current_step = None
            job.records_processed = 0
            job.records_created = 0
            job.records_updated = 0
            job.records_deleted = 0
            job.counters = {}
            job.start_time = None
            job.end_time = None
            job.error_message = None
            job.error_details = None
            job.error_history = []
            job.result = None
            job.cancel_reason = None
            job.created_by = self.actor

    @dataclass(frozen=True, kw_only=True)
    class Started(Event):
        attempt: int

        def apply(self, job: Job) -> None:
            if job.status is JobStatus.FAILED:
                # A retry: the failed attempt's error moves into the history and
                # the counters count the new attempt from zero.
                job.error_history = [
                    *job.error_history,
                    {
                        "attempt": job.attempt,
                        "error_message": job.error_message,
                        "error_details": job.error_details,
                        "failed_at": _iso(job.end_time),
                    },
                ]
                job.error_message = None
                job.error_details = None
                job.progress = 0
                job.current_step = None
                for name in RECORD_COUNTERS:
                    setattr(job, name, 0)
                job.counters = {}
                job.end_time = None
            if job.start_time is None:
                job.start_time = self.timestamp
            job.attempt = self.attempt
            job.status = JobStatus.RUNNING

    @dataclass(frozen=True, kw_only=True)
    class Progressed(Event):
        progress: int | None
        current_step: str | None
        records_processed: int | None
        total_records: int | None
        records_created: int | None
        records_updated: int | None
        records_deleted: int | None
        counters: dict[str, int] | None

        def apply(self, job: Job) -> None:
            if self.progress is not None:
                job.progress = self.progress
            if self.current_step is not None:
                job.current_step = self.current_step
            if self.total_records is not None:
                job.total_records = self.total_records
            job.apply_records(
                self.records_processed,
                self.records_created,
                self.records_updated,
                self.records_deleted,
            )
            job.apply_counters(self.counters)

    @dataclass(frozen=True, kw_only=True)
    class Succeeded(Event):
        records_processed: int | None
        records_created: int | None
        records_updated: int | None
        records_deleted: int | None
        result: JsonObject | None
        counters: dict[str, int] | None

        def apply(self, job: Job) -> None:
            job.apply_records(
                self.records_processed,
                self.records_created,
                self.records_updated,
                self.records_deleted,
            )
            job.apply_counters(self.counters)
            job.result = self.result
            job.progress = 100
            job.status = JobStatus.COMPLETED
            job.end_time = self.timestamp

    @dataclass(frozen=True, kw_only=True)
    class Failed(Event):
        error_message: str
        error_details: JsonObject | None
        counters: dict[str, int] | None

        def apply(self, job: Job) -> None:
            job.apply_counters(self.counters)
            job.error_message = self.error_message
            job.error_details = self.error_details
            job.status = JobStatus.FAILED
            job.end_time = self.timestamp

    @dataclass(frozen=True, kw_only=True)
    class Cancelled(Event):
        reason: str | None

        def apply(self, job: Job) -> None:
            job.cancel_reason = self.reason
            job.status = JobStatus.CANCELLED
            job.end_time = self.timestamp

    @dataclass(frozen=True, kw_only=True)
    class Deleted(Event):
        def apply(self, job: Job) -> None:
            job.status = JobStatus.DELETED

    @dataclass(frozen=True, kw_only=True)
    class Snapshot(LedgerEvent, CanSnapshotAggregate[str]):
        """A job's state at a version, so loading a long stream skips its older events."""

        topic: str
        state: JsonObject

        def mutate(self, _: None) -> Job:
            job = super().mutate(None)
            assert isinstance(job, Job)
            # The stored state holds the status as its plain string value.
            job.status = JobStatus(job.status)
            return job

    if TYPE_CHECKING:
        # State set by Created.apply; annotated here for type checkers only,
        # since class-level annotations would become __init__ parameters.
        tenant: str
        job_id: str
        job_type: str
        name: str | None
        parameters: JsonObject
        labels: dict[str, str]
        total_records: int | None
        max_attempts: int
        status: JobStatus
        attempt: int
        progress: int
        current_step: str | None
        records_processed: int
        records_created: int
        records_updated: int
        records_deleted: int
        counters: dict[str, int]
        start_time: datetime | None
        end_time: datetime | None
        error_message: str | None
        error_details: JsonObject | None
        error_history: list[JsonObject]
        result: JsonObject | None
        cancel_reason: str | None
        created_by: str

    # -- commands ---------------------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        tenant: str,
        job_id: str,
        job_type: str,
        name: str | None = None,
        parameters: JsonObject | None = None,
        labels: dict[str, str] | None = None,
        total_records: int | None = None,
        max_attempts: int = 1,
        actor: str,
        request_id: str,
    ) -> Job:
        """A new pending job."""
        if max_attempts < 1:
            raise InvalidCommand("max_attempts", "must be at least 1")
        return cls._create(
            cls.Created,
            id=stream_id(tenant, job_id),
            tenant=tenant,
            job_id=job_id,
            job_type=job_type,
            name=name,
            parameters=parameters or {},
            labels=labels or {},
            total_records=total_records,
            max_attempts=max_attempts,
            actor=actor,
            request_id=request_id,
        )

    def start(self, *, actor: str, request_id: str) -> None:
        self._require(JobStatus.RUNNING, "start")
        if self.status is JobStatus.RUNNING:
            raise InvalidTransition(self.job_id, self.status.value, "start")
        if self.status is JobStatus.FAILED and self.attempt >= self.max_attempts:
            raise InvalidTransition(
                self.job_id, self.status.value, "start", f"all {self.max_attempts} attempts used"
            )
        self.trigger_event(
            self.Started, attempt=self.attempt + 1, actor=actor, request_id=request_id
        )

    def record_progress(
        self,
        *,
        progress: int | None = None,
        current_step: str | None = None,
        records_processed: int | None = None,
        total_records: int | None = None,
        records_created: int | None = None,
        records_updated: int | None = None,
        records_deleted: int | None = None,
        counters: dict[str, int] | None = None,
        actor: str,
        request_id: str,
    ) -> None:
        self._require_running("record progress of")
        if progress is not None and not 0 <= progress <= 100:
            raise InvalidCommand("progress", "must be between 0 and 100")
        self.trigger_event(
            self.Progressed,
            progress=progress,
            current_step=current_step,
            records_processed=records_processed,
            total_records=total_records,
            records_created=records_created,
            records_updated=records_updated,
            records_deleted=records_deleted,
            counters=counters,
            actor=actor,
            request_id=request_id,
        )

    def succeed(
        self,
        *,
        records_processed: int | None = None,
        records_created: int | None = None,
        records_updated: int | None = None,
        records_deleted: int | None = None,
        result: JsonObject | None = None,
        counters: dict[str, int] | None = None,
        actor: str,
        request_id: str,
    ) -> None:
        self._require_running("succeed")
        self.trigger_event(
            self.Succeeded,
            records_processed=records_processed,
            records_created=records_created,
            records_updated=records_updated,
            records_deleted=records_deleted,
            result=result,
            counters=counters,
            actor=actor,
            request_id=request_id,
        )

    def fail(
        self,
        *,
        error_message: str,
        error_details: JsonObject | None = None,
        counters: dict[str, int] | None = None,
        actor: str,
        request_id: str,
    ) -> None:
        self._require_running("fail")
        if not error_message:
            raise InvalidCommand("error_message", "must not be empty")
        self.trigger_event(
            self.Failed,
            error_message=error_message,
            error_details=error_details,
            counters=counters,
            actor=actor,
            request_id=request_id,
        )

    def cancel(self, *, reason: str | None = None, actor: str, request_id: str) -> None:
        self._require(JobStatus.CANCELLED, "cancel")
        self.trigger_event(self.Cancelled, reason=reason, actor=actor, request_id=request_id)

    def delete(self, *, actor: str, request_id: str) -> None:
        self._require(JobStatus.DELETED, "delete")
        self.trigger_event(self.Deleted, actor=actor, request_id=request_id)

    # -- helpers ------------------------------------------------------------------

    def trigger_event(self, event_class: type[CanMutateAggregate[str]], **kwargs: Any) -> None:
        """Make the job's next event and apply it, as the library's `trigger_event` does.

        Faster for events of the job's own making: the library copies the arguments
        twice, sets each field of the frozen event one by one, and checks the event's
        id and version against the job that has just given them (a third of a batch's
        time). The event gets every field of its class: `tests/unit/test_domain.py`
        holds each command's event to its class's fields.
        """
        event = object.__new__(event_class)
        version = self._version + 1
        now = datetime.now(UTC)
        fields = event.__dict__
        fields["originator_id"] = self._id
        fields["originator_version"] = version
        fields["timestamp"] = now
        fields.update(kwargs)
        event.apply(self)
        self._version = version
        self._modified_on = now
        self._pending_events.append(event)

    def _require(self, target: JobStatus, action: str) -> None:
        if target not in ALLOWED[self.status]:
            raise InvalidTransition(self.job_id, self.status.value, action)

    def _require_running(self, action: str) -> None:
        if self.status is not JobStatus.RUNNING:
            raise InvalidTransition(self.job_id, self.status.value, action)

    def apply_records(
        self,
        records_processed: int | None,
        records_created: int | None,
        records_updated: int | None,
        records_deleted: int | None,
    ) -> None:
        # Spelled out: a loop over the names was a tenth of a progress event's apply.
        if records_processed is not None:
            self.records_processed = records_processed
        if records_created is not None:
            self.records_created = records_created
        if records_updated is not None:
            self.records_updated = records_updated
        if records_deleted is not None:
            self.records_deleted = records_deleted

    def apply_counters(self, counters: Mapping[str, int] | None) -> None:
        if counters:
            self.counters = {**self.counters, **counters}

    @property
    def duration_ms(self) -> int | None:
        """Milliseconds from the first start to the end, once the job has ended."""
        if self.start_time is None or self.end_time is None:
            return None
        return millis_between(self.start_time, self.end_time)


def millis_between(start: datetime, end: datetime) -> int:
    """Whole milliseconds from `start` to `end`."""
    return (end - start) // timedelta(milliseconds=1)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
