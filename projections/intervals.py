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
from psycopg.sql import SQL

from ledger.domain import Job, JobStatus, millis_between, stream_id
from projections.bulk import BulkTable
from projections.tracking import (
    Batch,
    BatchProjection,
    ByClass,
    TrackedView,
    select_by_keys,
    stream_keys,
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
TYPES: Final = (
    "text", "text", "int4", "text", "text", "timestamptz", "timestamptz", "timestamptz",
    "timestamptz", "int8",
)  # fmt: skip
"""The `job_status_intervals` column types in COLUMNS order, for binary COPY."""
SELECT_OPEN: Final = select_by_keys("job_status_intervals", COLUMNS, "valid_to IS NULL")
INTERVALS: Final = BulkTable("job_status_intervals", COLUMNS, TYPES)
CLOSE_INTERVALS: Final = SQL(
    "UPDATE job_status_intervals i SET valid_to = c.valid_to "
    "FROM unnest(%b::text[], %b::text[], %b::int[], %b::timestamptz[]) "
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
OPENS: Final = frozenset({Job.Created, *STATUS_AFTER})
"""Events that may open an interval; the others (Progressed) change nothing here."""


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


FOLLOW: Final = ByClass(follow.dispatch)


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
        if type(event) not in OPENS:
            continue
        assert isinstance(event, Job.Event)
        sid = event.originator_id
        current = open_intervals.get(sid)
        if current is not None and event.originator_version <= current.version:
            continue
        if current is None and not isinstance(event, Job.Created):
            if type(event) in STATUS_AFTER:
                log.warning("intervals: %s v%d has no open interval", sid, event.originator_version)
            continue
        new = FOLLOW[type(event)](event, current)
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
    query_indexes = (
        "job_status_intervals_tenant_created_at_id_idx",
        "job_status_intervals_created_at_id_tenant_idx",
        "job_status_intervals_tenant_valid_from_idx",
    )

    def write(self, curs: Cursor[DictRow], batch: Batch) -> None:
        """Close and open the intervals the batch's events mark."""
        keys = stream_keys(batch)
        curs.execute(SELECT_OPEN, keys.arrays)
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
            # New by construction: the fold opens only versions above the open interval's.
            INTERVALS.insert(curs, map(msgspec.structs.astuple, changes.opened.values()))


class IntervalsProjection(BatchProjection[IntervalsView]):
    """Keeps the status intervals: a status change ends one interval and begins the next."""

    name = "job_status_intervals"


def _from_record(record: DictRow) -> Interval:
    values = dict(record)
    values["valid_from"] = utc(values["valid_from"])
    values["valid_to"] = utc_or_none(values["valid_to"])
    values["created_at"] = utc(values["created_at"])
    values["start_time"] = utc_or_none(values["start_time"])
    return Interval(**values)
