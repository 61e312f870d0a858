"""Long streams are snapshotted, and a job loaded from a snapshot equals its full replay."""

from __future__ import annotations

from ledger.application import SNAPSHOT_INTERVAL, JobLedger
from ledger.commands import Context, Fail, NewJob, RecordProgress, Start
from ledger.domain import Job, JobStatus, stream_id
from ledger.persistence import persistence_env
from ledger.settings import Settings

CTX = Context(actor="tok", request_id="req")


def full_replay(ledger: JobLedger, stream: str) -> Job:
    job: Job | None = None
    for event in ledger.events.get(stream):
        job = event.mutate(job)
    assert job is not None
    return job


def test_a_long_job_loads_from_its_snapshot_as_it_replays(
    ledger: JobLedger, settings: Settings
) -> None:
    ledger.create_job("acme", NewJob(job_id="long", job_type="sync", max_attempts=2), CTX)
    ledger.record("acme", "long", Start(), CTX)
    for n in range(2 * SNAPSHOT_INTERVAL + 20):
        ledger.record("acme", "long", RecordProgress(progress=n % 101, records_processed=n), CTX)
    ledger.record("acme", "long", Fail(error_message="late failure"), CTX)

    stream = stream_id("acme", "long")
    assert ledger.snapshots is not None
    versions = [s.originator_version for s in ledger.snapshots.get(stream)]
    assert versions == [SNAPSHOT_INTERVAL, 2 * SNAPSHOT_INTERVAL]

    fresh = JobLedger(env=persistence_env(settings))  # no cache of this process's writes
    try:
        loaded = fresh.get_job("acme", "long")
        assert loaded.status is JobStatus.FAILED
        assert vars(loaded) == vars(full_replay(fresh, stream))
        # A retry from the snapshot-loaded state behaves as from the replay.
        retried = fresh.record("acme", "long", Start(), CTX)
        assert (retried.job.attempt, retried.job.progress) == (2, 0)
    finally:
        fresh.close()
