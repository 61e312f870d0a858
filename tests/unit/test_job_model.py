"""Random command sequences against a Job and a tiny model of its status (hypothesis)."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

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
from ledger.domain import Job, JobStatus
from ledger.errors import InvalidCommand, InvalidTransition

CTX = Context(actor="tok", request_id="req")

commands = st.one_of(
    st.just(Start()),
    st.just(Start()),
    st.builds(Fail, error_message=st.just("boom")),
    st.builds(
        RecordProgress,
        progress=st.none() | st.integers(-5, 105),
        records_processed=st.none() | st.integers(0, 10_000),
        records_created=st.none() | st.integers(0, 100),
        current_step=st.none() | st.text(max_size=5),
    ),
    st.builds(Succeed, records_created=st.none() | st.integers(0, 100)),
    st.builds(Fail, error_message=st.text(max_size=5)),
    st.builds(Cancel, reason=st.none() | st.text(max_size=5)),
    st.just(Delete()),
)


def model_next(
    status: JobStatus, attempt: int, max_attempts: int, c: JobCommand
) -> JobStatus | None:
    """What the model says the status becomes, or None when the command must be refused."""
    match c:
        case Start() if status is JobStatus.PENDING:
            return JobStatus.RUNNING
        case Start() if status is JobStatus.FAILED and attempt < max_attempts:
            return JobStatus.RUNNING
        case RecordProgress() if status is JobStatus.RUNNING:
            return None if c.progress is not None and not 0 <= c.progress <= 100 else status
        case Succeed() if status is JobStatus.RUNNING:
            return JobStatus.COMPLETED
        case Fail() if status is JobStatus.RUNNING:
            return JobStatus.FAILED if c.error_message else None
        case Cancel() if status in (JobStatus.PENDING, JobStatus.RUNNING):
            return JobStatus.CANCELLED
        case Delete() if status is not JobStatus.DELETED:
            return JobStatus.DELETED
    return None


class JobMachine(RuleBasedStateMachine):
    job: Job
    status: JobStatus

    @initialize(max_attempts=st.integers(1, 3))
    def create(self, max_attempts: int) -> None:
        self.job = Job.create(
            tenant="acme",
            job_id="job-1",
            job_type="sync",
            max_attempts=max_attempts,
            actor=CTX.actor,
            request_id=CTX.request_id,
        )
        self.status = JobStatus.PENDING

    @rule(command=commands)
    def send(self, command: JobCommand) -> None:
        expected = model_next(self.status, self.job.attempt, self.job.max_attempts, command)
        before = (self.job.version, len(self.job.pending_events), dict(self.job.__dict__))
        try:
            execute(self.job, command, CTX)
        except (InvalidTransition, InvalidCommand):
            assert expected is None, f"{command} refused in {self.status}"
            # A refused command records nothing.
            assert (self.job.version, len(self.job.pending_events), self.job.__dict__) == before
            return
        assert expected is not None, f"{command} accepted in {self.status}"
        self.status = expected

    @invariant()
    def status_matches_model(self) -> None:
        assert self.job.status is self.status

    @invariant()
    def replay_gives_the_same_job(self) -> None:
        replayed: Job | None = None
        for event in self.job.pending_events:
            replayed = event.mutate(replayed)
        assert replayed is not None
        mine = {k: v for k, v in self.job.__dict__.items() if k != "_pending_events"}
        theirs = {k: v for k, v in replayed.__dict__.items() if k != "_pending_events"}
        assert mine == theirs

    @invariant()
    def progress_in_range(self) -> None:
        assert 0 <= self.job.progress <= 100
        assert 0 <= self.job.attempt <= self.job.max_attempts


TestJobMachine = JobMachine.TestCase
TestJobMachine.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
