"""Group commit: one writer thread appends the events of many waiting writes in one transaction.

Each write is validated against its own aggregate by the caller's thread; only the
append is shared. The writer takes whatever is queued when it is free (no waiting
window, so a lone write pays no delay), at most `max_events` events, and never two
writes to the same stream in one transaction. If the shared transaction fails (a
write lost a race with another process, or reused an idempotency key), each write
of the batch is appended alone, so only the culprit sees the error.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Final

from eventsourcing.domain import CanMutateAggregate

from ledger.domain import Job
from ledger.idempotency import PendingAnswer, Positions

log = logging.getLogger(__name__)

MAX_EVENTS: Final = 1000

Save = Callable[[Sequence[CanMutateAggregate[str]], Sequence[PendingAnswer]], Sequence[int]]
"""Appends events (and answers) in one transaction: each event's position, in order."""
Done = Callable[[Positions | Exception], None]
"""Told on the writer thread where a write's events stand once committed, or why it failed."""


@dataclass(slots=True)
class Submission:
    # The events are taken off their jobs up front: a failed save would otherwise
    # have consumed them before a write could be appended again alone.
    events: Sequence[CanMutateAggregate[str]]
    answer: PendingAnswer | None
    streams: set[str]
    done: Done

    @property
    def size(self) -> int:
        return len(self.events)


@dataclass(slots=True)
class BatchSizes:
    """How many writes and events each shared transaction carried (for metrics)."""

    transactions: int = 0
    writes: int = 0
    events: int = 0


class GroupCommitter:
    """Funnels appends from many threads into few transactions."""

    def __init__(self, save: Save, max_events: int = MAX_EVENTS) -> None:
        self._save = save
        self._max_events = max_events
        self._queue: queue.SimpleQueue[Submission | None] = queue.SimpleQueue()
        self._held: list[Submission] = []
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.sizes = BatchSizes()

    def append(self, jobs: Sequence[Job], answer: PendingAnswer | None) -> Positions:
        """Append the jobs' pending events (and the answer); blocks until committed, and
        gives where each event (stream, version) stands in the global log."""
        future: Future[Positions] = Future()
        self.submit(jobs, answer, partial(_settle, future))
        return future.result()

    def submit(self, jobs: Sequence[Job], answer: PendingAnswer | None, done: Done) -> None:
        """Queue the jobs' pending events (and the answer) for appending; the writer
        thread calls `done` with their positions once they are committed, or with the
        error that failed them. A callback, not a future: a write from the event loop
        would pay for a future here and another there."""
        self._ensure_started()
        events = [event for job in jobs for event in job.collect_events()]
        self._queue.put(Submission(events, answer, {job.id for job in jobs}, done))

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="ledger-group-commit", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._commit(batch)

    def _next_batch(self) -> list[Submission] | None:
        """The held-over writes first, then whatever is queued now, within the limits."""
        waiting = self._held
        self._held = []
        if not waiting:
            first = self._queue.get()
            if first is None:
                return None
            waiting = [first]
        batch: list[Submission] = []
        streams: set[str] = set()
        events = 0
        while True:
            for submission in waiting:
                fits = events == 0 or events + submission.size <= self._max_events
                if fits and not (submission.streams & streams):
                    batch.append(submission)
                    streams |= submission.streams
                    events += submission.size
                else:
                    self._held.append(submission)
            if self._held or events >= self._max_events:
                return batch
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                return batch
            if more is None:
                self._queue.put(None)  # finish this batch, then stop
                return batch
            waiting = [more]

    def _commit(self, batch: list[Submission]) -> None:
        events = [event for s in batch for event in s.events]
        answers = [s.answer for s in batch if s.answer is not None]
        try:
            positions = self._save(events, answers)
        except Exception as error:
            if len(batch) == 1:
                _tell(batch[0], error)
                return
            log.debug("shared append failed (%s); appending %d writes alone", error, len(batch))
            for submission in batch:
                self._commit([submission])
            return
        self.sizes.transactions += 1
        self.sizes.writes += len(batch)
        self.sizes.events += len(positions)
        # The events went in submission order: each write's positions are a slice.
        start = 0
        for submission in batch:
            end = start + submission.size
            _tell(
                submission,
                {
                    (str(e.originator_id), e.originator_version): position
                    for e, position in zip(submission.events, positions[start:end], strict=True)
                },
            )
            start = end


def _tell(submission: Submission, outcome: Positions | Exception) -> None:
    try:
        submission.done(outcome)
    except Exception:
        # The writer thread serves every write: a callback's failure must not stop it.
        log.exception("a write's callback failed")


def _settle(future: Future[Positions], outcome: Positions | Exception) -> None:
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
