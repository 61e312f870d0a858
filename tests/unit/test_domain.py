"""Every allowed and refused transition of the Job state machine, from the ALLOWED table."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from ledger.commands import (
    Cancel,
    Context,
    Delete,
    Fail,
    JobCommand,
    RecordProgress,
    Start,
    Succeed,
    execute,
)
from ledger.domain import ALLOWED, FINISHED, Job, JobStatus, split_stream_id, stream_id
from ledger.errors import InvalidCommand, InvalidTransition

CTX = Context(actor="tok-1", request_id="req-1")

# How to bring a new job to each status (max_attempts=2 leaves a retry after one failure).
PATHS: dict[JobStatus, list[JobCommand]] = {
    JobStatus.PENDING: [],
    JobStatus.RUNNING: [Start()],
    JobStatus.COMPLETED: [Start(), Succeed()],
    JobStatus.FAILED: [Start(), Fail(error_message="boom")],
    JobStatus.CANCELLED: [Cancel()],
    JobStatus.DELETED: [Delete()],
}

# The status each command leads to.
COMMANDS: dict[str, tuple[JobCommand, JobStatus]] = {
    "start": (Start(), JobStatus.RUNNING),
    "progress": (RecordProgress(progress=10), JobStatus.RUNNING),
    "succeed": (Succeed(), JobStatus.COMPLETED),
    "fail": (Fail(error_message="x"), JobStatus.FAILED),
    "cancel": (Cancel(reason="r"), JobStatus.CANCELLED),
    "delete": (Delete(), JobStatus.DELETED),
}


def job_in(status: JobStatus, max_attempts: int = 2) -> Job:
    job = Job.create(
        tenant="acme",
        job_id="job-1",
        job_type="full_sync",
        max_attempts=max_attempts,
        actor=CTX.actor,
        request_id=CTX.request_id,
    )
    for command in PATHS[status]:
        execute(job, command, CTX)
    assert job.status is status
    return job


def is_allowed(status: JobStatus, name: str) -> bool:
    """The table's answer, with the command-level rules on top of it."""
    target = COMMANDS[name][1]
    if target not in ALLOWED[status]:
        return False
    if name == "start":
        return status in (JobStatus.PENDING, JobStatus.FAILED)
    if name in ("progress", "succeed", "fail"):
        return status is JobStatus.RUNNING
    return True


CASES = [(status, name) for status in JobStatus for name in COMMANDS]


@pytest.mark.parametrize(("status", "name"), CASES, ids=[f"{s.value}-{n}" for s, n in CASES])
def test_transition_follows_the_table(status: JobStatus, name: str) -> None:
    job = job_in(status)
    version = job.version
    pending = len(job.pending_events)
    command, target = COMMANDS[name]
    if is_allowed(status, name):
        execute(job, command, CTX)
        assert job.status is target
        assert job.version == version + 1
    else:
        with pytest.raises(InvalidTransition) as refused:
            execute(job, command, CTX)
        assert refused.value.status == status.value
        assert job.status is status
        assert job.version == version
        assert len(job.pending_events) == pending


def test_refusal_names_job_status_and_action() -> None:
    job = job_in(JobStatus.COMPLETED)
    with pytest.raises(InvalidTransition, match="cannot start job job-1: status is completed"):
        job.start(actor="a", request_id="r")


def test_nothing_is_allowed_after_deleted() -> None:
    assert ALLOWED[JobStatus.DELETED] == frozenset()


def test_retry_after_failure_starts_a_new_attempt() -> None:
    job = job_in(JobStatus.RUNNING)
    execute(job, RecordProgress(progress=40, records_processed=400, records_created=3), CTX)
    execute(job, Fail(error_message="disk full", error_details={"code": 28}), CTX)
    first_start = job.start_time
    execute(job, Start(), CTX)
    assert job.attempt == 2
    assert job.status is JobStatus.RUNNING
    assert (job.progress, job.records_processed, job.records_created) == (0, 0, 0)
    assert job.error_message is None
    assert job.error_history == [
        {
            "attempt": 1,
            "error_message": "disk full",
            "error_details": {"code": 28},
            "failed_at": job.error_history[0]["failed_at"],
        }
    ]
    assert job.end_time is None
    assert job.start_time == first_start


def test_no_retry_once_attempts_are_used() -> None:
    job = job_in(JobStatus.FAILED, max_attempts=1)
    with pytest.raises(InvalidTransition, match="all 1 attempts used"):
        execute(job, Start(), CTX)


def test_success_sets_progress_to_100_and_duration() -> None:
    job = job_in(JobStatus.RUNNING)
    execute(job, RecordProgress(progress=30), CTX)
    execute(job, Succeed(records_created=150, records_updated=45, records_deleted=10), CTX)
    assert job.progress == 100
    assert (job.records_created, job.records_updated, job.records_deleted) == (150, 45, 10)
    assert job.start_time is not None and job.end_time is not None
    assert job.duration_ms == (job.end_time - job.start_time).total_seconds() * 1000 // 1


def test_progress_outside_0_100_is_refused() -> None:
    job = job_in(JobStatus.RUNNING)
    with pytest.raises(InvalidCommand) as refused:
        execute(job, RecordProgress(progress=101), CTX)
    assert refused.value.field == "progress"
    assert job.version == 2


def test_each_event_records_actor_and_request_id() -> None:
    job = job_in(JobStatus.COMPLETED)
    assert [(e.actor, e.request_id) for e in job.pending_events] == [
        (CTX.actor, CTX.request_id)
    ] * 3


def test_counters_merge_across_events() -> None:
    job = job_in(JobStatus.RUNNING)
    execute(job, RecordProgress(counters={"a": 1, "b": 2}), CTX)
    execute(job, Succeed(counters={"b": 5}), CTX)
    assert job.counters == {"a": 1, "b": 5}


def test_stream_ids_keep_tenants_apart() -> None:
    assert stream_id("acme", "job:1/x") == "acme/job:1/x"
    assert split_stream_id("acme/job:1/x") == ("acme", "job:1/x")


def test_finished_statuses() -> None:
    assert {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED} == FINISHED


def test_max_attempts_below_one_is_refused() -> None:
    make: Callable[[], Job] = lambda: Job.create(  # noqa: E731
        tenant="t", job_id="j", job_type="x", max_attempts=0, actor="a", request_id="r"
    )
    with pytest.raises(InvalidCommand):
        make()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_makes_an_event_with_exactly_its_class_fields(name: str) -> None:
    """Events are made without their dataclass __init__ (Job.trigger_event): each must
    still carry every field of its class and nothing else, and apply as the library's
    own `mutate` would: the next version, the event's time as the job's."""
    command, _ = COMMANDS[name]
    job = Job.create(tenant="t", job_id="j", job_type="x", actor="a", request_id="r")
    for step in PATHS[JobStatus.PENDING if name == "start" else JobStatus.RUNNING]:
        execute(job, step, CTX)
    before = job.version
    job.collect_events()
    execute(job, command, CTX)
    (event,) = job.collect_events()
    assert set(vars(event)) == {f.name for f in dataclasses.fields(event)}
    assert event.originator_id == job.id
    assert event.originator_version == before + 1 == job.version
    assert job.modified_on == event.timestamp
    assert event.timestamp.tzinfo is not None
    # The class's own constructor accepts exactly these fields and makes an equal event.
    assert type(event)(**vars(event)) == event
