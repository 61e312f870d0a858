"""JobLedger against real PostgreSQL: appends, conflicts, idempotent answers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from ledger.application import JobLedger, Written
from ledger.commands import (
    Context,
    Delete,
    Fail,
    JobCommand,
    NewJob,
    RecordProgress,
    Start,
    Succeed,
)
from ledger.domain import JobStatus
from ledger.errors import (
    IdempotencyKeyReused,
    InvalidTransition,
    JobAlreadyExists,
    JobGone,
    JobNotFound,
    VersionConflict,
)
from ledger.idempotency import Answer, IdempotencyKey
from ledger.settings import Settings

CTX = Context(actor="tok-test", request_id="req-1")


def test_create_then_start_appends_in_global_order(ledger: JobLedger) -> None:
    created = ledger.create_job("acme", NewJob(job_id="job-1", job_type="full_sync"), CTX)
    started = ledger.record("acme", "job-1", Start(), CTX)
    assert (created.version, started.version) == (1, 2)
    assert started.position > created.position
    assert ledger.get_job("acme", "job-1").status is JobStatus.RUNNING


def test_same_id_in_two_tenants_are_two_jobs(ledger: JobLedger) -> None:
    ledger.create_job("acme", NewJob(job_id="job-1", job_type="a"), CTX)
    ledger.create_job("globex", NewJob(job_id="job-1", job_type="b"), CTX)
    assert ledger.get_job("globex", "job-1").job_type == "b"
    with pytest.raises(JobAlreadyExists):
        ledger.create_job("acme", NewJob(job_id="job-1", job_type="c"), CTX)


def test_unknown_and_deleted_jobs(ledger: JobLedger) -> None:
    with pytest.raises(JobNotFound):
        ledger.record("acme", "nope", Start(), CTX)
    ledger.create_job("acme", NewJob(job_id="job-1", job_type="a"), CTX)
    ledger.record("acme", "job-1", Delete(), CTX)
    with pytest.raises(JobGone):
        ledger.get_job("acme", "job-1")


def test_expected_version_mismatch_writes_nothing(ledger: JobLedger) -> None:
    ledger.create_job("acme", NewJob(job_id="job-1", job_type="a"), CTX)
    with pytest.raises(VersionConflict) as refused:
        ledger.record("acme", "job-1", Start(), CTX, expected_version=7)
    assert (refused.value.expected, refused.value.actual) == (7, 1)
    assert ledger.get_job("acme", "job-1").version == 1


def test_a_batch_creates_jobs_and_moves_them_on(ledger: JobLedger) -> None:
    ledger.create_job("acme", NewJob(job_id="old", job_type="a"), CTX)
    results = ledger.record_batch(
        "acme",
        [
            ("new-1", NewJob(job_id="new-1", job_type="a", labels={"k": "v"})),
            ("old", NewJob(job_id="old", job_type="a")),
            ("new-1", Start()),
            ("new-1", NewJob(job_id="new-1", job_type="a")),
            ("new-2", NewJob(job_id="new-2", job_type="b", max_attempts=3)),
        ],
        CTX,
    )
    assert [type(r) for r in results] == [
        Written,
        JobAlreadyExists,
        Written,
        JobAlreadyExists,
        Written,
    ]
    assert ledger.get_job("acme", "new-1").status is JobStatus.RUNNING
    assert ledger.get_job("acme", "new-1").labels == {"k": "v"}
    assert ledger.get_job("acme", "new-2").max_attempts == 3
    assert ledger.get_job("acme", "old").version == 1
    # The same id in another tenant is another job.
    (other,) = ledger.record_batch("globex", [("old", NewJob(job_id="old", job_type="c"))], CTX)
    assert isinstance(other, Written) and other.version == 1


def test_a_batch_create_that_loses_a_race_fails_alone(
    ledger: JobLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = JobLedger(env=ledger.env)
    check = ledger._existing
    checks: list[set[str]] = []

    def racing(streams: Sequence[str]) -> set[str]:
        # Another process creates `race` right after this ledger's first check.
        checks.append(check(streams))
        if len(checks) == 1:
            other.create_job("acme", NewJob(job_id="race", job_type="x"), CTX)
        return checks[-1]

    monkeypatch.setattr(ledger, "_existing", racing)
    try:
        items: list[tuple[str, JobCommand | NewJob]] = [
            ("race", NewJob(job_id="race", job_type="y")),
            ("fine", NewJob(job_id="fine", job_type="y")),
        ]
        results = ledger.record_batch("acme", items, CTX)
    finally:
        other.close()
    # The shared append failed on the stream's first version; redone, `race` is refused.
    assert checks == [set(), {"acme/race"}]
    assert [type(r) for r in results] == [JobAlreadyExists, Written]
    assert ledger.get_job("acme", "race").job_type == "x"
    assert ledger.get_job("acme", "fine").version == 1


def test_a_transition_made_by_another_process_counts_here(ledger: JobLedger) -> None:
    # This ledger last wrote the job pending; another process started it since. What
    # it remembers says "not running", but the stored state decides.
    other = JobLedger(env=ledger.env)
    try:
        for job_id in ("single", "batched"):
            ledger.create_job("acme", NewJob(job_id=job_id, job_type="x"), CTX)
            other.record("acme", job_id, Start(), CTX)
        progressed = ledger.record("acme", "single", RecordProgress(progress=10), CTX)
        results = ledger.record_batch(
            "acme",
            [("batched", RecordProgress(progress=20)), ("batched", Succeed())],
            CTX,
        )
    finally:
        other.close()
    assert (progressed.version, progressed.job.progress) == (3, 10)
    assert [r.version for r in results if isinstance(r, Written)] == [3, 4]
    assert ledger.get_job("acme", "batched").status is JobStatus.COMPLETED
    # A command the stored state refuses too is still refused.
    with pytest.raises(InvalidTransition):
        ledger.record("acme", "batched", Start(), CTX)


def test_batch_appends_valid_items_and_reports_each(ledger: JobLedger) -> None:
    ledger.create_job("acme", NewJob(job_id="job-1", job_type="a"), CTX)
    results = ledger.record_batch(
        "acme",
        [
            ("job-1", Start()),
            ("job-2", Start()),
            ("job-1", RecordProgress(progress=5)),
            ("job-1", Start()),
            ("job-1", Succeed()),
        ],
        CTX,
    )
    kinds = [type(r) for r in results]
    assert kinds == [Written, JobNotFound, Written, InvalidTransition, Written]
    written = [r for r in results if isinstance(r, Written)]
    assert [w.version for w in written] == [2, 3, 4]
    assert [w.job.status for w in written] == [
        JobStatus.RUNNING,
        JobStatus.RUNNING,
        JobStatus.COMPLETED,
    ]
    assert written[0].position < written[1].position < written[2].position


def test_answer_is_stored_with_the_events(ledger: JobLedger) -> None:
    key = IdempotencyKey.of("acme", "k-1", "POST", "/api/v1/jobs", b"{}")
    written = ledger.create_job(
        "acme",
        NewJob(job_id="job-1", job_type="a"),
        CTX,
        answer=(key, lambda outcomes: Answer(201, str(outcomes[0].position).encode())),  # type: ignore[union-attr]
    )
    assert ledger.answers.find(key) == Answer(201, str(written.position).encode())
    other = IdempotencyKey.of("acme", "k-1", "POST", "/api/v1/jobs", b'{"x":1}')
    with pytest.raises(IdempotencyKeyReused):
        ledger.answers.find(other)
    # Keys are per tenant.
    elsewhere = IdempotencyKey.of("globex", "k-1", "POST", "/api/v1/jobs", b"{}")
    assert ledger.answers.find(elsewhere) is None


def test_failed_answer_rolls_back_the_events(ledger: JobLedger) -> None:
    key = IdempotencyKey.of("acme", "k-2", "POST", "/x", b"")

    def broken(_: object) -> Answer:
        raise RuntimeError("render failed")

    with pytest.raises(RuntimeError):
        ledger.create_job("acme", NewJob(job_id="job-1", job_type="a"), CTX, answer=(key, broken))
    with pytest.raises(JobNotFound):
        ledger.get_job("acme", "job-1")
    assert ledger.answers.find(key) is None


def test_a_batch_loads_the_jobs_it_moves_together(ledger: JobLedger) -> None:
    # A ledger that caches nothing loads every job a batch moves from the store, in
    # one query: past snapshots, deleted, unknown, and moved earlier in the batch.
    ledger.create_job("acme", NewJob(job_id="long", job_type="x"), CTX)
    ledger.record("acme", "long", Start(), CTX)
    for n in range(248):  # snapshots at versions 100 and 200
        ledger.record("acme", "long", RecordProgress(progress=n % 100, records_processed=n), CTX)
    for job_id in ("short", "gone", "done"):
        ledger.create_job("acme", NewJob(job_id=job_id, job_type="y"), CTX)
    ledger.record("acme", "gone", Delete(), CTX)
    ledger.record("acme", "done", Start(), CTX)
    ledger.record("acme", "done", Succeed(), CTX)
    ledger.create_job("globex", NewJob(job_id="short", job_type="z"), CTX)
    uncached = JobLedger(env={**ledger.env, "LEDGER_WRITE_CACHE_SIZE": "0"})
    try:
        results = uncached.record_batch(
            "acme",
            [
                ("long", RecordProgress(progress=99)),
                ("short", Start()),
                ("gone", Start()),
                ("nobody", Start()),
                ("done", Start()),
                ("new", NewJob(job_id="new", job_type="y")),
                ("new", Start()),
                ("short", Succeed()),
            ],
            CTX,
        )
    finally:
        uncached.close()
    kinds = [type(r) for r in results]
    assert kinds == [
        Written,
        Written,
        JobGone,
        JobNotFound,
        InvalidTransition,
        Written,
        Written,
        Written,
    ]
    long = ledger.get_job("acme", "long")
    assert (long.version, long.progress, long.records_processed) == (251, 99, 247)
    assert results[0] == Written(long, results[0].position)  # type: ignore[union-attr]
    assert ledger.get_job("acme", "short").status is JobStatus.COMPLETED
    assert ledger.get_job("globex", "short").status is JobStatus.PENDING
    assert ledger.get_job("acme", "new").status is JobStatus.RUNNING


def record_now(
    ledger: JobLedger, job_id: str, command: JobCommand, expected_version: int | None = None
) -> Written | None:
    """`ledger.record_now` from an event loop: None, or what its future gives."""

    async def now() -> Written | None:
        pending = ledger.record_now("acme", job_id, command, CTX, expected_version=expected_version)
        return None if pending is None else await asyncio.wait_for(pending, 10)

    return asyncio.run(now())


def test_record_now_appends_a_cached_job_without_blocking(ledger: JobLedger) -> None:
    # Not written by this process: not cached, so the caller must use `record`.
    other = JobLedger(env=ledger.env)
    try:
        other.create_job("acme", NewJob(job_id="theirs", job_type="x"), CTX)
        assert record_now(ledger, "theirs", Start()) is None
    finally:
        other.close()
    ledger.create_job("acme", NewJob(job_id="job-1", job_type="x"), CTX)
    written = record_now(ledger, "job-1", Start())
    assert written is not None
    assert (written.version, written.job.status) == (2, JobStatus.RUNNING)
    stored = ledger.get_job("acme", "job-1")
    assert (stored.version, stored.status) == (2, JobStatus.RUNNING)
    # The cache holds what was appended: the next write goes the same way.
    progressed = record_now(ledger, "job-1", RecordProgress(progress=5))
    assert progressed is not None
    assert progressed.position > written.position


def test_record_now_leaves_to_record_what_it_cannot_decide(ledger: JobLedger) -> None:
    ledger.create_job("acme", NewJob(job_id="job-1", job_type="x"), CTX)
    # Refused on the cached state (which may be behind another process): not decided here.
    assert record_now(ledger, "job-1", Succeed()) is None
    # An If-Match the cached version does not meet: `record` reads the stored one.
    assert record_now(ledger, "job-1", Start(), expected_version=7) is None
    # Another write to the job in flight here: this one would have to wait for it.
    with ledger._stream_locks.held(["acme/job-1"]):
        assert record_now(ledger, "job-1", Start()) is None
    assert ledger.get_job("acme", "job-1").version == 1  # none of them wrote anything
    started = record_now(ledger, "job-1", Start(), expected_version=1)
    assert started is not None and started.version == 2


def test_record_now_appends_even_when_its_caller_gives_up(ledger: JobLedger) -> None:
    ledger.create_job("acme", NewJob(job_id="job-1", job_type="x"), CTX)

    async def give_up() -> None:
        pending = ledger.record_now("acme", "job-1", Start(), CTX)
        assert pending is not None
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending

    asyncio.run(give_up())
    with ledger._stream_locks.held(["acme/job-1"]):  # held only once the append is over
        assert ledger.get_job("acme", "job-1").version == 2
    assert record_now(ledger, "job-1", RecordProgress(progress=1)) is not None


def test_record_now_fails_when_another_process_wrote_first(ledger: JobLedger) -> None:
    ledger.create_job("acme", NewJob(job_id="job-1", job_type="x"), CTX)
    other = JobLedger(env=ledger.env)
    try:
        other.record("acme", "job-1", Start(), CTX)
    finally:
        other.close()
    # This process still remembers the job pending: the append loses on the version.
    with pytest.raises(IntegrityError):
        record_now(ledger, "job-1", Start())
    # The stale state is forgotten, and `record` decides on the stored one.
    assert record_now(ledger, "job-1", RecordProgress(progress=1)) is None
    with pytest.raises(InvalidTransition):
        ledger.record("acme", "job-1", Start(), CTX)
    assert ledger.record("acme", "job-1", RecordProgress(progress=1), CTX).version == 3


@pytest.mark.parametrize("jobs", [1000, 100])
def test_an_append_larger_than_the_socket_buffer_commits(
    ledger: JobLedger, settings: Settings, jobs: int
) -> None:
    # Failures with messages of the longest length the API takes: a batch of 1000 is
    # a 4 MB append, 100 go in one statement with their hashes; both are over what a
    # socket buffers, so the append is sent in parts while PostgreSQL holds the lock.
    ids = [f"job-{n}" for n in range(jobs)]
    ledger.record_batch(
        "acme",
        [(j, NewJob(job_id=j, job_type="x")) for j in ids] + [(j, Start()) for j in ids],
        CTX,
    )
    failures: list[tuple[str, JobCommand | NewJob]] = [
        (j, Fail(error_message=f"{j} " + "e" * 4090)) for j in ids
    ]
    with ThreadPoolExecutor(1) as pool:
        appending = pool.submit(ledger.record_batch, "acme", failures, CTX)
        try:
            outcomes = appending.result(timeout=60)
        except TimeoutError:
            end_sessions(settings)  # the stuck append holds the table lock: let the test end
            pytest.fail("the append did not commit within 60 s")
    assert all(isinstance(o, Written) for o in outcomes)
    failed = ledger.get_job("acme", ids[-1])
    assert (failed.status, failed.error_message) == (JobStatus.FAILED, f"{ids[-1]} " + "e" * 4090)


def end_sessions(settings: Settings) -> None:
    """End the server sessions of the test's ledger (those in a transaction)."""
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND state <> 'idle' AND datname = current_database()"
        )
