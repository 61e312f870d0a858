"""JobLedger: the write side's use cases over the event store."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, cast

import msgspec
from eventsourcing.application import Application
from eventsourcing.domain import CanMutateAggregate, CanMutateProtocol
from eventsourcing.persistence import IntegrityError, PersistenceError
from eventsourcing.utils import EnvType

from ledger.commands import Context, JobCommand, NewJob, execute
from ledger.domain import Job, JobStatus, stream_id
from ledger.errors import JobAlreadyExists, JobGone, JobNotFound, LedgerError, VersionConflict
from ledger.group_commit import GroupCommitter
from ledger.idempotency import Answer, IdempotencyKey, IdempotencyStore, PendingAnswer, Positions
from ledger.recorder import LedgerRecorder
from ledger.streams import StreamsReader

log = logging.getLogger(__name__)

APPLICATION_NAME: Final = "ledger"
"""Names the event table (`ledger_events`) and the position every projection tracks."""

CONFLICT_RETRIES: Final = 8
"""How often a write without If-Match reloads and retries when another write came first."""
SNAPSHOT_INTERVAL: Final = 100
"""A job's state is snapshotted each time its stream passes a multiple of this many events."""
WRITE_CACHE_SIZE: Final = "LEDGER_WRITE_CACHE_SIZE"
DEFAULT_WRITE_CACHE: Final = 10_000


class Stood(msgspec.Struct, frozen=True):
    """A job as one item of a batch left it, once a later item moves it on: what that
    item's answer shows. (A whole copy of the job was a twentieth of a batch's CPU.)"""

    id: str
    job_id: str
    version: int
    status: JobStatus

    @classmethod
    def of(cls, job: Job) -> Stood:
        return cls(job.id, job.job_id, job.version, job.status)


@dataclass(frozen=True, slots=True)
class Written:
    """A job after a write, and where the write's last event stands in the global log."""

    job: Job | Stood
    position: int

    @property
    def version(self) -> int:
        return self.job.version


AnswerFor = Callable[[Sequence["Written | LedgerError"]], Answer]
"""Renders the answer to a write from its outcomes (one per item), to store with its events."""


class JobLedger(Application[str]):
    """Creates jobs and records their transitions, one event stream per job."""

    name = APPLICATION_NAME

    def __init__(self, env: EnvType | None = None) -> None:
        super().__init__(env)
        self.committer = GroupCommitter(self._append)
        # Writes to one job from this process take turns, so they don't race each
        # other to the database; races with other processes are still retried.
        self._stream_locks = StreamLocks()
        self._latest = LatestJobs(int(self.env.get(WRITE_CACHE_SIZE) or DEFAULT_WRITE_CACHE))
        assert isinstance(self.recorder, LedgerRecorder) and self.snapshots is not None
        self._streams = StreamsReader(
            self.recorder.datastore,
            self.recorder.events_table_name,
            self.snapshots.recorder.events_table_name,  # type: ignore[attr-defined]
        )
        # Snapshots taken after writes that did not wait in a thread of their own.
        self._snapshotter = ThreadPoolExecutor(1, thread_name_prefix="ledger-snapshots")

    def close(self) -> None:
        self.committer.close()
        self._snapshotter.shutdown(wait=True)
        super().close()

    def _append(
        self, events: Sequence[CanMutateAggregate[str]], answers: Sequence[PendingAnswer]
    ) -> Sequence[int]:
        # The mapper and recorder directly: `save` would check each event against the
        # library's runtime protocols (about 8% of a batch's time) to tell events
        # from aggregates, and the event store would make two objects for each
        # event's position (6%); the snapshot and notify hooks are unused here.
        stored = list(map(self.mapper.to_stored_event, events))
        ids = self.recorder.insert_events(stored, answers=answers)
        assert ids is not None and len(ids) == len(stored)
        return ids

    def _existing(self, streams: Sequence[str]) -> set[str]:
        """Which of these job streams already have events."""
        recorder = self.recorder
        assert isinstance(recorder, LedgerRecorder)
        return recorder.existing_streams(streams)

    @property
    def answers(self) -> IdempotencyStore:
        recorder = self.recorder
        assert isinstance(recorder, LedgerRecorder)
        return recorder.answers

    # -- writes -------------------------------------------------------------------

    def create_job(
        self,
        tenant: str,
        new: NewJob,
        ctx: Context,
        *,
        answer: tuple[IdempotencyKey, AnswerFor] | None = None,
    ) -> Written:
        """Append a job's Created event; JobAlreadyExists if the tenant has that id."""
        job = _new_job(tenant, new, ctx)
        try:
            return _one(self._save([job], [job], answer))
        except IntegrityError:
            raise JobAlreadyExists(new.job_id) from None

    def record(
        self,
        tenant: str,
        job_id: str,
        command: JobCommand,
        ctx: Context,
        *,
        expected_version: int | None = None,
        answer: tuple[IdempotencyKey, AnswerFor] | None = None,
    ) -> Written:
        """Apply one command to a job and append its event.

        With `expected_version` (If-Match) a job at another version is refused with
        VersionConflict; without it, a write that loses a race is retried on the new state.
        """
        with self._stream_locks.held([stream_id(tenant, job_id)]):
            fresh = False
            for _ in range(CONFLICT_RETRIES):
                job = self._job_for_write(tenant, job_id, fresh=fresh)
                if expected_version is not None and job.version != expected_version:
                    if not fresh:  # the cached state may be behind another process
                        fresh = True
                        continue
                    raise VersionConflict(job_id, expected_version, job.version)
                try:
                    execute(job, command, ctx)
                except LedgerError:
                    if fresh:
                        raise
                    # Refused on the state this process last wrote, which another
                    # process may have moved on since: decide again on the stored one.
                    fresh = True
                    continue
                try:
                    return _one(self._save([job], [job], answer))
                except IntegrityError:
                    fresh = True
                    if expected_version is not None:
                        latest = self.get_job(tenant, job_id)
                        raise VersionConflict(job_id, expected_version, latest.version) from None
            raise VersionConflict(job_id, job.version, self.get_job(tenant, job_id).version)

    def record_now(
        self,
        tenant: str,
        job_id: str,
        command: JobCommand,
        ctx: Context,
        *,
        expected_version: int | None = None,
        answer: tuple[IdempotencyKey, AnswerFor] | None = None,
    ) -> asyncio.Future[Written] | None:
        """`record` without blocking, called on an event loop: None when the write needs
        `record` (the job is not cached, another write to it is in flight here, or its
        cached state refuses the command or the expected version, and may be behind
        another process), else the write's future on the running loop.

        The future fails with IntegrityError when another process appended to the job
        first (call `record` then: it decides again on the stored state), or with what
        the append raised. The job stays locked until its append is over, and the append
        goes on if the future is cancelled (its caller went away).
        """
        stream = stream_id(tenant, job_id)
        release = self._stream_locks.try_hold(stream)
        if release is None:
            return None
        job = None
        try:
            cached = self._latest.get(stream)
            if (
                cached is not None
                and cached.status is not JobStatus.DELETED
                and (expected_version is None or expected_version == cached.version)
            ):
                job = _freeze(cached)
                execute(job, command, ctx)
        except LedgerError:
            job = None
        except BaseException:
            release()
            raise
        if job is None:
            release()
            return None
        loop = asyncio.get_running_loop()
        result: asyncio.Future[Written] = loop.create_future()

        def at(positions: Positions) -> Written:
            return Written(job, positions[(job.id, job.version)])

        pending = _pending_answer(answer, lambda positions: [at(positions)])
        reached = job.version - len(job.pending_events)

        def appended(outcome: Positions | Exception) -> None:
            # On the group committer's thread: bookkeeping only, the snapshot elsewhere.
            if isinstance(outcome, Exception):
                self._latest.pop(stream)
                release()
                _settle_on(loop, result, outcome)
                return
            self._latest.put(stream, _freeze(job))
            release()
            if _snapshot_due(job, reached):
                self._snapshotter.submit(self._snapshot, job)
            _settle_on(loop, result, at(outcome))

        try:
            self.committer.submit([job], pending, appended)
        except BaseException:
            release()
            raise
        return result

    def record_batch(
        self,
        tenant: str,
        items: Sequence[tuple[str, JobCommand | NewJob]],
        ctx: Context,
        *,
        answer: tuple[IdempotencyKey, AnswerFor] | None = None,
    ) -> list[Written | LedgerError]:
        """Apply many commands in order and append every accepted event in one transaction.

        A `NewJob` item creates its job (later items may already move it). A refused
        item fails alone; if another write came first, the batch is worked out again
        on the new state.
        """
        streams = [stream_id(tenant, job_id) for job_id, _ in items]
        with self._stream_locks.held(streams):
            return self._record_batch(tenant, items, ctx, answer)

    def _record_batch(
        self,
        tenant: str,
        items: Sequence[tuple[str, JobCommand | NewJob]],
        ctx: Context,
        answer: tuple[IdempotencyKey, AnswerFor] | None,
    ) -> list[Written | LedgerError]:
        fresh = False
        created = [stream_id(tenant, c.job_id) for _, c in items if isinstance(c, NewJob)]
        for _ in range(CONFLICT_RETRIES):
            # One query for every job the batch creates, rather than a read per job.
            taken = self._existing(created) if created else set()
            loaded = self._load_moved(tenant, items, fresh)
            jobs: dict[str, Job] = {}
            outcomes: list[Job | Stood | LedgerError] = []
            # Where each job's outcome stands while it is the job itself: it is copied
            # only when a later item moves the job on.
            live: dict[str, int] = {}
            for job_id, command in items:
                try:
                    if isinstance(command, NewJob):
                        if job_id in jobs or stream_id(tenant, job_id) in taken:
                            raise JobAlreadyExists(job_id)
                        job = jobs[job_id] = _new_job(tenant, command, ctx)
                    elif job_id in jobs:
                        job = jobs[job_id]
                        if job_id in live:
                            outcomes[live.pop(job_id)] = Stood.of(job)
                        execute(job, command, ctx)
                    else:
                        job = jobs[job_id] = self._first_use(
                            tenant, job_id, command, ctx, fresh, loaded
                        )
                    live[job_id] = len(outcomes)
                    outcomes.append(job)
                except LedgerError as error:
                    outcomes.append(error)
            try:
                return self._save(list(jobs.values()), outcomes, answer)
            except IntegrityError:
                fresh = True
        raise VersionConflict("batch", 0, 0)

    def _load_moved(
        self, tenant: str, items: Sequence[tuple[str, JobCommand | NewJob]], fresh: bool
    ) -> dict[str, Job | None]:
        """The stored state of every job the batch moves before (or without) creating
        it and this process has not cached (`fresh`: every such job), read together;
        None for a job that has no events."""
        wanted: dict[str, None] = {}
        seen: set[str] = set()
        for job_id, command in items:
            if job_id in seen:
                continue
            seen.add(job_id)
            stream = stream_id(tenant, job_id)
            if not isinstance(command, NewJob) and (fresh or self._latest.get(stream) is None):
                wanted[stream] = None
        return self._load(list(wanted)) if wanted else {}

    def _load(self, streams: Sequence[str]) -> dict[str, Job | None]:
        """These jobs as stored (None: no events), read in one query, and cached."""
        stored = self._streams.read(streams)
        decode = self.mapper.to_domain_event
        loaded: dict[str, Job | None] = {}
        for stream in streams:
            job = None
            # Each event mutates the job directly: the library's projector would check
            # every event against a runtime protocol first (most of the time here).
            for event in stored.get(stream, ()):
                job = cast("CanMutateProtocol[Job]", decode(event)).mutate(job)
            if job is not None:
                self._latest.put(stream, _freeze(job))
            loaded[stream] = job
        return loaded

    def _first_use(
        self,
        tenant: str,
        job_id: str,
        command: JobCommand,
        ctx: Context,
        fresh: bool,
        loaded: dict[str, Job | None],
    ) -> Job:
        """The job with a batch's first command for it applied.

        A command refused on the state this process last wrote is decided again on
        the stored state, which another process may have moved on since. (Later
        commands build on this one; if it was stale, the append fails and the
        batch is redone from stored state.)
        """
        stream = stream_id(tenant, job_id)
        if stream in loaded:  # read from the store just now
            job = _freeze(_live(job_id, loaded[stream]))
            execute(job, command, ctx)
            return job
        job = self._job_for_write(tenant, job_id, fresh=fresh)
        try:
            execute(job, command, ctx)
        except LedgerError:
            if fresh:
                raise
            job = self._job_for_write(tenant, job_id, fresh=True)
            execute(job, command, ctx)
        return job

    # -- reads ----------------------------------------------------------------------

    def get_job(self, tenant: str, job_id: str) -> Job:
        """The job as its events make it now: JobNotFound, or JobGone once deleted."""
        stream = stream_id(tenant, job_id)
        return _live(job_id, self._load([stream])[stream])

    # -- internals --------------------------------------------------------------------

    def _snapshot(self, *jobs: Job) -> None:
        """Store the jobs' states (one transaction), so a later load replays at most
        SNAPSHOT_INTERVAL events."""
        if self.snapshots is None or not jobs:
            return
        try:
            self.snapshots.put([Job.Snapshot.take(_freeze(job)) for job in jobs])
        except PersistenceError:
            # A snapshot only saves work; the events are already committed.
            log.warning("could not snapshot %d jobs, first %s", len(jobs), jobs[0].id)

    def _job_for_write(self, tenant: str, job_id: str, *, fresh: bool) -> Job:
        """A private copy of the job to change: from the cache of jobs this process last
        wrote, or (`fresh`, or not cached) rebuilt from its events.

        A cached job can be behind another process's write; appending from it then
        fails on the stream's version, and the write is retried with `fresh`.
        """
        stream = stream_id(tenant, job_id)
        cached = None if fresh else self._latest.get(stream)
        if cached is not None:
            if cached.status is JobStatus.DELETED:
                raise JobGone(job_id)
            return _freeze(cached)
        return self.get_job(tenant, job_id)

    def _save(
        self,
        jobs: Sequence[Job],
        outcomes: Sequence[Job | Stood | LedgerError],
        answer: tuple[IdempotencyKey, AnswerFor] | None,
    ) -> list[Written | LedgerError]:
        # Each outcome is the job as that command left it (a batch may move one job
        # several times), so its position is that of the event at its version.
        def written(positions: Positions) -> list[Written | LedgerError]:
            # LedgerError first: a plain class, where isinstance(o, Job) asks an ABC.
            return [
                o if isinstance(o, LedgerError) else Written(o, positions[(o.id, o.version)])
                for o in outcomes
            ]

        pending = _pending_answer(answer, written)
        reached = {job.id: job.version - len(job.pending_events) for job in jobs}
        try:
            positions = self.committer.append(jobs, pending)
        except IntegrityError:
            for job in jobs:
                self._latest.pop(job.id)
            raise
        # The jobs themselves, not copies: nothing changes a job once its write has
        # committed, and whoever takes one from the cache to change copies it first.
        for job in jobs:
            self._latest.put(job.id, job)
        self._snapshot(*(job for job in jobs if _snapshot_due(job, reached[job.id])))
        return written(positions)


class LatestJobs:
    """The last state this process wrote for each of the most recently used jobs."""

    def __init__(self, maxsize: int) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._maxsize = maxsize
        self._lock = threading.Lock()

    def get(self, stream: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(stream)
            if job is not None:
                self._jobs.move_to_end(stream)
            return job

    def put(self, stream: str, job: Job) -> None:
        if self._maxsize <= 0:
            return
        with self._lock:
            self._jobs[stream] = job
            self._jobs.move_to_end(stream)
            while len(self._jobs) > self._maxsize:
                self._jobs.popitem(last=False)

    def pop(self, stream: str) -> None:
        with self._lock:
            self._jobs.pop(stream, None)


class StreamLocks:
    """One lock per stream in use, made on demand and dropped when no write holds it.

    Exact per stream: a fixed set of striped locks would make two batches of a few
    hundred different jobs nearly always share a stripe, and so wait for each
    other's commit instead of one being checked while the other commits.
    """

    def __init__(self) -> None:
        self._locks: dict[str, _StreamLock] = {}
        self._mutex = threading.Lock()

    @contextmanager
    def held(self, streams: Sequence[str]) -> Iterator[None]:
        # Taken in sorted order, so two writes over overlapping streams can't deadlock.
        ordered = sorted(set(streams))
        with self._mutex:
            entries = [self._locks.get(s) or self._add(s) for s in ordered]
            for entry in entries:
                entry.users += 1
        taken = 0
        try:
            for entry in entries:
                entry.lock.acquire()
                taken += 1
            yield
        finally:
            for entry in entries[:taken]:
                entry.lock.release()
            with self._mutex:
                for stream, entry in zip(ordered, entries, strict=True):
                    entry.users -= 1
                    if entry.users == 0:
                        del self._locks[stream]

    def try_hold(self, stream: str) -> Callable[[], None] | None:
        """Take the stream's lock if it is free, without waiting: what releases it, or
        None when another write holds it."""
        with self._mutex:
            entry = self._locks.get(stream) or self._add(stream)
            if not entry.lock.acquire(blocking=False):
                if entry.users == 0:
                    del self._locks[stream]
                return None
            entry.users += 1

        def release() -> None:
            entry.lock.release()
            with self._mutex:
                entry.users -= 1
                if entry.users == 0:
                    del self._locks[stream]

        return release

    def _add(self, stream: str) -> _StreamLock:
        entry = self._locks[stream] = _StreamLock()
        return entry


class _StreamLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


def _new_job(tenant: str, new: NewJob, ctx: Context) -> Job:
    return Job.create(
        tenant=tenant,
        job_id=new.job_id,
        job_type=new.job_type,
        name=new.name,
        parameters=new.parameters,
        labels=new.labels,
        total_records=new.total_records,
        max_attempts=new.max_attempts,
        actor=ctx.actor,
        request_id=ctx.request_id,
    )


def _live(job_id: str, job: Job | None) -> Job:
    """A stored job that writes and reads may use: JobNotFound without events, JobGone
    once deleted."""
    if job is None:
        raise JobNotFound(job_id)
    if job.status is JobStatus.DELETED:
        raise JobGone(job_id)
    return job


def _pending_answer(
    answer: tuple[IdempotencyKey, AnswerFor] | None,
    written: Callable[[Positions], list[Written | LedgerError]],
) -> PendingAnswer | None:
    """The answer to render in the append's transaction, once its positions are known."""
    if answer is None:
        return None
    key, render = answer
    return PendingAnswer(key, lambda positions: render(written(positions)))


def _snapshot_due(job: Job, reached: int) -> bool:
    """Whether the job's stream passed a multiple of SNAPSHOT_INTERVAL since `reached`."""
    return job.version // SNAPSHOT_INTERVAL > reached // SNAPSHOT_INTERVAL


def _settle_on(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Written], outcome: Written | Exception
) -> None:
    """From another thread: settle a write's future on its loop (if that still runs)."""
    if not loop.is_closed():
        loop.call_soon_threadsafe(_settle, future, outcome)


def _settle(future: asyncio.Future[Written], outcome: Written | Exception) -> None:
    """Settle a write's future, unless its caller gave up on it."""
    if future.cancelled():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _one(outcomes: list[Written | LedgerError]) -> Written:
    (outcome,) = outcomes
    assert isinstance(outcome, Written)
    return outcome


def _freeze(job: Job) -> Job:
    """A copy of the job as it stands, so later items of a batch don't change it.

    Shallow is enough: events replace the job's collections rather than mutate them.
    """
    copy = Job.__new__(Job)
    copy.__dict__.update(job.__dict__)
    copy.__dict__["_pending_events"] = []
    return copy


def new_job_id() -> str:
    """A server-made job id: `job-` and 12 hex digits."""
    return f"job-{secrets.token_hex(6)}"
