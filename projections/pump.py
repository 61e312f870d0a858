"""Reads the event log in batches and hands each batch to every projection."""

from __future__ import annotations

import logging
from typing import Final

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresApplicationRecorder

from ledger.application import APPLICATION_NAME, JobLedger
from ledger.persistence import persistence_env
from ledger.settings import Settings
from projections.intervals import IntervalsProjection, IntervalsView
from projections.jobs import JobsProjection, JobsView
from projections.running import RunningProjection, RunningView
from projections.stats import StatsProjection, StatsView
from projections.tracking import Positioned, Projector

log = logging.getLogger(__name__)

BATCH_SIZE: Final = 1000
"""Events read, projected and committed together (per projection, one transaction)."""


class Pump:
    """The projections over one connection pool, and how far each has got.

    Reading goes through the library's application recorder (`select_notifications`)
    and mapper, so events are decoded exactly as the write side stored them.
    """

    def __init__(self, settings: Settings, *, batch_size: int = BATCH_SIZE) -> None:
        env = persistence_env(settings)
        env.update(POSTGRES_POOL_SIZE="2", POSTGRES_MAX_OVERFLOW="4")
        self.app = JobLedger(env=env)
        recorder = self.app.recorder
        assert isinstance(recorder, PostgresApplicationRecorder)
        self.recorder = recorder
        self.channel: str = recorder.channel_name
        datastore = recorder.datastore
        self.projections: tuple[Projector, ...] = (
            JobsProjection(JobsView(datastore)),
            RunningProjection(RunningView(datastore)),
            StatsProjection(StatsView(datastore)),
            IntervalsProjection(IntervalsView(datastore)),
        )
        self.batch_size = batch_size
        self.positions: dict[str, int] = {}

    def load_positions(self) -> dict[str, int]:
        """Read each projection's position from its tracking table."""
        self.positions = {p.name: p.view.position() for p in self.projections}
        return dict(self.positions)

    def step(self) -> int:
        """Project the next batch of events; the number read (0 when caught up)."""
        if not self.positions:
            self.load_positions()
        start = min(self.positions.values())
        notifications = self.recorder.select_notifications(
            start=start, limit=self.batch_size, inclusive_of_start=False
        )
        if not notifications:
            return 0
        batch = [Positioned(self.app.mapper.to_domain_event(n), n.id) for n in notifications]
        # Every event read advances tracking, whether or not a projection used it.
        tracking = Tracking(APPLICATION_NAME, notifications[-1].id)
        for projection in self.projections:
            done = self.positions[projection.name]
            if done < tracking.notification_id:
                projection.process_batch([p for p in batch if p.position > done], tracking)
                self.positions[projection.name] = tracking.notification_id
        return len(notifications)

    def catch_up(self) -> int:
        """Project every event recorded so far; the number of events read."""
        total = 0
        while count := self.step():
            total += count
        return total

    def reset(self) -> None:
        """Empty every read model and its tracking, for a rebuild."""
        for projection in self.projections:
            projection.view.reset()
        self.positions = {}

    def close(self) -> None:
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
