"""Reads the event log in batches and hands each batch to every projection.

The projections take a batch side by side, each on a connection of its own and in
a transaction of its own with its tracking position: while one waits for PostgreSQL
another folds, and each model still sees every event exactly once.
"""

from __future__ import annotations

import logging
from typing import Final

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresApplicationRecorder

from ledger.application import APPLICATION_NAME, JobLedger
from ledger.persistence import persistence_env
from ledger.settings import Settings
from projections.collector import collector_paused
from projections.intervals import IntervalsProjection, IntervalsView
from projections.jobs import JobsProjection, JobsView
from projections.lanes import Lanes
from projections.reader import LogReader, ReadAhead
from projections.running import RunningProjection, RunningView
from projections.stats import StatsProjection, StatsView
from projections.tracking import Projector

log = logging.getLogger(__name__)

BATCH_SIZE: Final = 20_000
"""Most events read, projected and committed together. On a backlog a bigger batch
folds more of each job's events into one row write (20,000 took 12% less time than
10,000; 40,000 no less than 20,000). It costs memory, some 2 kB an event for the
batch, again for the one read ahead and for the one still being written, and the
length of each projection's transaction."""


class Pump:
    """The projections over one connection pool, and how far each has got.

    Events are decoded by the application's mapper, exactly as the write side stored
    them; on a backlog the next batch is read while the current one is written.
    """

    def __init__(self, settings: Settings, *, batch_size: int = BATCH_SIZE) -> None:
        env = persistence_env(settings)
        # On a backlog, one connection per projection and one for reading ahead (the
        # pool grows to them, and shrinks back when idle); a batch is folded inside its
        # transaction, which may then sit idle for a while.
        env.update(
            POSTGRES_POOL_SIZE="2",
            POSTGRES_MAX_OVERFLOW="7",
            POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT="60",
        )
        self.app = JobLedger(env=env)
        recorder = self.app.recorder
        assert isinstance(recorder, PostgresApplicationRecorder)
        self.recorder = recorder
        self.channel: str = recorder.channel_name
        self.datastore = datastore = recorder.datastore
        self.reader = ReadAhead(LogReader(recorder, self.app.mapper))
        self.projections: tuple[Projector, ...] = (
            JobsProjection(JobsView(datastore)),
            RunningProjection(RunningView(datastore)),
            StatsProjection(StatsView(datastore)),
            IntervalsProjection(IntervalsView(datastore)),
        )
        self.batch_size = batch_size
        self.positions: dict[str, int] = {}
        """Where each projection has committed up to."""
        self.lanes = Lanes()
        self._sent: dict[str, int] = {}
        """Where each projection will be once the batches in flight commit."""

    def load_positions(self) -> dict[str, int]:
        """Read each projection's position from its tracking table."""
        self._settle(0)
        self.positions = {p.name: p.view.position() for p in self.projections}
        return dict(self.positions)

    def step(self, *, overlap: bool = False) -> int:
        """Project the next batch of events; the number read (0 when caught up).

        With `overlap`, after a full batch (a backlog) this returns while the
        projections may still be writing it; otherwise, and whenever the log is read
        to its end, every batch sent has been committed on return.
        """
        if not self.positions:
            self.load_positions()
        sent = self._sent if self.lanes.in_flight else self.positions
        with collector_paused():
            batch = self.reader.read(min(sent.values()), self.batch_size)
        if not batch:
            self._settle(0)
            return 0
        # Every event read advances tracking, whether or not a projection used it.
        tracking = Tracking(APPLICATION_NAME, batch[-1].position)
        behind = [p for p in self.projections if sent[p.name] < tracking.notification_id]
        self.lanes.send(behind, batch, tracking)
        self._sent = {**sent, **{p.name: tracking.notification_id for p in behind}}
        # One batch left in flight: each projection can start the next batch as soon
        # as it has written this one, whatever the others are doing.
        self._settle(1 if overlap and len(batch) == self.batch_size else 0)
        return len(batch)

    def _settle(self, keep: int) -> None:
        """Wait until at most `keep` batches are in flight, and note the positions reached."""
        try:
            self.positions.update(self.lanes.settle(keep))
        except BaseException:
            self.positions = {}  # some may have committed: read them all again
            raise

    def catch_up(self) -> int:
        """Project every event recorded so far; the number of events read."""
        total = 0
        while count := self.step(overlap=True):
            total += count
        return total

    def reset(self) -> None:
        """Empty every read model and its tracking, for a rebuild."""
        for projection in self.projections:
            projection.view.reset()
        self.positions = {}

    def close(self) -> None:
        self.lanes.close()
        self.reader.close()
        self.app.close()


def catch_up(settings: Settings) -> dict[str, int]:
    """Bring every projection up to the end of the log, in this thread."""
    pump = Pump(settings)
    try:
        pump.catch_up()
        return pump.load_positions()
    finally:
        pump.close()


def rebuild(settings: Settings) -> dict[str, int]:
    """Empty the read models and replay the whole log into them."""
    pump = Pump(settings)
    try:
        pump.reset()
        pump.catch_up()
        return pump.load_positions()
    finally:
        pump.close()
