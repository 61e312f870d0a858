"""How far each projection has got: its position, the head of the log, and its lag."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from eventsourcing.persistence import StoredEvent
from psycopg.sql import SQL, Identifier

from ledger.domain import Job
from ledger.settings import Settings
from projections.pump import Pump

SELECT_LAG: Final = (
    "SELECT count(*) AS events, min(notification_id) AS next FROM {schema}.{events} "
    "WHERE notification_id > %s"
)
SELECT_EVENT: Final = (
    "SELECT originator_id, originator_version, topic, state FROM {schema}.{events} "
    "WHERE notification_id = %s"
)


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """One projection: where it is, where the log is, and how far behind."""

    name: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    """Age of the oldest event it has not projected (0 when caught up)."""


def projection_status(settings: Settings, now: datetime | None = None) -> list[ProjectionStatus]:
    """The status of every projection the runner keeps."""
    pump = Pump(settings)
    try:
        recorder = pump.recorder
        names = {
            "schema": Identifier(recorder.datastore.schema),
            "events": Identifier(recorder.events_table_name),
        }
        head = recorder.max_notification_id() or 0
        now = now or datetime.now(UTC)
        statuses = []
        for name, position in pump.load_positions().items():
            with recorder.datastore.transaction(commit=False) as curs:
                curs.execute(SQL(SELECT_LAG).format(**names), (position,))
                lag = curs.fetchone()
                assert lag is not None
                seconds = 0.0
                if lag["next"] is not None:
                    curs.execute(SQL(SELECT_EVENT).format(**names), (lag["next"],))
                    row = curs.fetchone()
                    assert row is not None
                    event = pump.app.mapper.to_domain_event(StoredEvent(**row))
                    assert isinstance(event, Job.Event)
                    seconds = max(0.0, (now - event.timestamp).total_seconds())
            statuses.append(
                ProjectionStatus(name, position, max(head, position), lag["events"], seconds)
            )
        return statuses
    finally:
        pump.close()
