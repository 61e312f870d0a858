"""Status intervals (`job_status_intervals`): each job's status over time.

Every event that changes a job's status closes the job's open interval at the
event's time and opens the next one, so "which jobs were running at 14:05?" is a
range query on rows, never a replay. Events that keep the status (Progressed)
change nothing here.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import singledispatch
from typing import TYPE_CHECKING, Final

import msgspec
from eventsourcing.persistence import Tracking
from psycopg.sql import SQL

from ledger.domain import Job, JobStatus, millis_between, stream_id
from projections.tracking import (
    Batch,
    BatchProjection,
    TrackedView,
    key_arrays,
    utc,
    utc_or_none,
)

if TYPE_CHECKING:
    from psycopg import Cursor
    from psycopg.rows import DictRow

log = logging.getLogger(__name__)


class Interval(msgspec.Struct, kw_only=True):
    """A `job_status_intervals` row: the job's status from `valid_from` until `valid_to`."""

    tenant: str
    id: str
    version: int
    job_type: str
    status: str
    valid_from: datetime
    valid_to: datetime | None
    created_at: datetime
    start_time: datetime | None
    duration_ms: int | None


COLUMNS: Final = Interval.__struct_fields__
KEYS: Final = "(tenant, id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
SELECT_OPEN: Final = SQL(
    f"SELECT {', '.join(COLUMNS)} FROM job_status_intervals WHERE valid_to IS NULL AND {KEYS}"
)
INSERT_INTERVAL: Final = SQL(
    f"INSERT INTO job_status_intervals ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
    # A replay of an interval already written changes nothing.
    "ON CONFLICT (tenant, id, version) DO NOTHING"
)
CLOSE_INTERVALS: Final = SQL(
    "UPDATE job_status_intervals i SET valid_to = c.valid_to "
    "FROM unnest(%s::text[], %s::text[], %s::int[], %s::timestamptz[]) "
    "AS c(tenant, id, version, valid_to) "
    "WHERE i.tenant = c.tenant AND i.id = c.id AND i.version = c.version "
    "AND i.valid_to IS NULL"
)

STATUS_AFTER: Final[dict[type[Job.Event], JobStatus]] = {
    Job.Started: JobStatus.RUNNING,
    Job.Succeeded: JobStatus.COMPLETED,
    Job.Failed: JobStatus.FAILED,
    Job.Cancelled: JobStatus.CANCELLED,
    Job.Deleted: JobStatus.DELETED,
}
ENDS: Final = frozenset({Job.Succeeded, Job.Failed, Job.Cancelled})


@singledispatch
def follow(event: Job.Event, open_: Interval | None) -> Interval | None:
    """The interval `event` opens after `open_` (the job's open one), or None if it opens none."""
    status = STATUS_AFTER.get(type(event))
    if open_ is None or status is None:
        return None
    start_time = open_.start_time
    if status is JobStatus.RUNNING and start_time is None:
        start_time = event.timestamp  # the first start, as Job keeps it
    duration = None
    if type(event) in ENDS and start_time is not None:
        duration = millis_between(start_time, event.timestamp)
    return msgspec.structs.replace(
        open_,
        version=event.originator_version,
        status=status.value,
        valid_from=event.timestamp,
        valid_to=None,
        start_time=start_time,
        duration_ms=duration,
    )


@follow.register
def _(event: Job.Created, open_: Interval | None) -> Interval | None:
    return Interval(
        tenant=event.tenant,
        id=event.job_id,
        version=event.originator_version,
        job_type=event.job_type,
        status=JobStatus.PENDING.value,
        valid_from=event.timestamp,
        valid_to=None,
        created_at=event.timestamp,
        start_time=None,
        duration_ms=None,
    )


class Changes(msgspec.Struct):
    """What a batch does to the table: intervals opened, and stored ones closed."""

    opened: dict[tuple[str, int], Interval]
    """New intervals by (stream id, version); closed in memory if the batch ends them."""
    closed: list[Interval]
    """Intervals stored before the batch, now with their `valid_to`."""


def fold(open_intervals: dict[str, Interval], batch: Batch) -> Changes:
    """Apply the batch to the open interval of each job (by stream id).

    Events at or below the open interval's version are already in it, so a
    replay opens and closes nothing.
    """
    changes = Changes(opened={}, closed=[])
    for event, _ in batch:
        if not isinstance(event, Job.Event):
            continue
        sid = event.originator_id
        current = open_intervals.get(sid)
        if current is not None and event.originator_version <= current.version:
            continue
        if current is None and not isinstance(event, Job.Created):
            if type(event) in STATUS_AFTER:
                log.warning("intervals: %s v%d has no open interval", sid, event.originator_version)
            continue
        new = follow(event, current)
        if new is None:
            continue
        if current is not None:
            current.valid_to = event.timestamp
            if (sid, current.version) not in changes.opened:
                changes.closed.append(current)
        open_intervals[sid] = new
        changes.opened[(sid, new.version)] = new
    return changes


class IntervalsView(TrackedView):
    """`job_status_intervals` and its `job_status_intervals_tracking` position."""

    name = "job_status_intervals"
    tables = ("job_status_intervals",)

    def update(self, batch: Batch, tracking: Tracking) -> None:
        """Close and open the intervals the batch's events mark, with its tracking."""
        self.commit_batch(batch, tracking, self._write)

    def _write(self, curs: Cursor[DictRow], batch: Batch) -> None:
        streams = {p.event.originator_id for p in batch if isinstance(p.event, Job.Event)}
        curs.execute(SELECT_OPEN, key_arrays(streams))
        open_intervals = {stream_id(r["tenant"], r["id"]): _from_record(r) for r in curs}
        changes = fold(open_intervals, batch)
        if changes.closed:
            closed = changes.closed
            curs.execute(
                CLOSE_INTERVALS,
                (
                    [i.tenant for i in closed],
                    [i.id for i in closed],
                    [i.version for i in closed],
                    [i.valid_to for i in closed],
                ),
            )
        if changes.opened:
            curs.executemany(
                INSERT_INTERVAL, [msgspec.structs.astuple(i) for i in changes.opened.values()]
            )


class IntervalsProjection(BatchProjection[IntervalsView]):
    """Keeps the status intervals: a status change ends one interval and begins the next."""

    name = "job_status_intervals"

    def process_batch(self, batch: Batch, tracking: Tracking) -> None:
        self.view.update(batch, tracking)


def _from_record(record: DictRow) -> Interval:
    values = dict(record)
    values["valid_from"] = utc(values["valid_from"])
    values["valid_to"] = utc_or_none(values["valid_to"])
    values["created_at"] = utc(values["created_at"])
    values["start_time"] = utc_or_none(values["start_time"])
    return Interval(**values)
