"""What every projection shares: batches of positioned events, and a PostgreSQL view
that commits a batch's read-model changes with its tracking position in one transaction."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final, Generic, NamedTuple, Protocol, TypeVar

import psycopg
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import Projection
from psycopg.adapt import Buffer, Dumper, PyFormat, Transformer
from psycopg.postgres import types as builtin_types
from psycopg.pq import Format
from psycopg.sql import SQL, Identifier

from ledger.application import APPLICATION_NAME
from ledger.domain import Job, split_stream_id
from projections.bulk import fast_json

if TYPE_CHECKING:
    from psycopg import Cursor
    from psycopg.rows import DictRow

PROJECTIONS_CHANNEL: Final = "ledger_projections"
"""NOTIFY channel a view signals when a batch commits (wakes read-your-writes waiters)."""


class Positioned(NamedTuple):
    """A domain event and its position in the global log."""

    event: object
    position: int


Batch = Sequence[Positioned]
Writer = Callable[["Cursor[DictRow]", Batch], None]

KEYS: Final = "(tenant, id) IN (SELECT * FROM unnest(%b::text[], %b::text[]))"
"""Selects a model's rows of the jobs in two arrays (for the few rows a batch deletes)."""


def select_by_keys(table: str, columns: Sequence[str], where: str = "") -> SQL:
    """The `columns` of `table`'s rows of the jobs in `StreamKeys.arrays` (and `where`).

    Each key is looked up in the table's index on (tenant, id): with a batch's
    thousands of keys and a table of some 100,000 rows the planner would rather read
    the whole table and hash the keys, which took up to twice as long.
    """
    names = ", ".join(columns)
    condition = f" AND {where}" if where else ""
    # OFFSET 0 keeps the subquery a subquery, so the join stays one probe per key.
    return SQL(
        f"SELECT t.* FROM unnest(%b::text[], %b::text[]) AS k(tenant, id) CROSS JOIN LATERAL "
        f"(SELECT {names} FROM {table} WHERE tenant = k.tenant AND id = k.id{condition} "
        "OFFSET 0) AS t"
    )


@dataclass(frozen=True)
class StreamKeys:
    """The jobs a batch's events belong to, by stream id and as arrays to select them by."""

    streams: set[str]
    tenants: list[str]
    ids: list[str]

    @classmethod
    def of(cls, batch: Batch) -> StreamKeys:
        streams = {p.event.originator_id for p in batch if isinstance(p.event, Job.Event)}
        tenants, ids = key_arrays(streams)
        return cls(streams, tenants, ids)

    @cached_property
    def arrays(self) -> tuple[TextArray, TextArray]:
        """The parameters of `select_by_keys`, dumped once for every view that sends them."""
        return TextArray(self.tenants), TextArray(self.ids)


class TextArray:
    """A text[] parameter in PostgreSQL's binary form, made once however often it is sent
    (each view sends a batch's keys, tens of thousands of them)."""

    __slots__ = ("data",)

    def __init__(self, values: list[str]) -> None:
        data = _TEXT_ARRAY.dump(values) if values else None
        self.data: Buffer = EMPTY_TEXT_ARRAY if data is None else data


class TextArrayDumper(Dumper):
    """Sends a TextArray as it was dumped."""

    format = Format.BINARY
    oid = builtin_types["text"].array_oid

    def dump(self, obj: TextArray) -> Buffer:
        return obj.data


EMPTY_TEXT_ARRAY: Final = struct.pack("!iiI", 0, 0, builtin_types["text"].oid)
"""No dimensions, no nulls, text elements."""
_TEXT_ARRAY: Final = Transformer().get_dumper(["text"], PyFormat.BINARY)
psycopg.adapters.register_dumper(TextArray, TextArrayDumper)


class EventBatch(list[Positioned]):
    """A batch as the pump hands it to every view: what each view asks of it is
    worked out once."""

    @cached_property
    def keys(self) -> StreamKeys:
        return StreamKeys.of(self)


F = TypeVar("F", bound=Callable[..., Any])


class ByClass(dict[type, F]):
    """A `singledispatch` function's implementation for each class, looked up once
    per class: a fold calls it for every event, and a call to the function itself
    looks it up each time."""

    def __init__(self, dispatch: Callable[[type], F]) -> None:
        super().__init__()
        self.dispatch = dispatch

    def __missing__(self, cls: type) -> F:
        found = self[cls] = self.dispatch(cls)
        return found


def stream_keys(batch: Batch) -> StreamKeys:
    """The jobs `batch` touches (once per EventBatch, however many views ask)."""
    return batch.keys if isinstance(batch, EventBatch) else StreamKeys.of(batch)


class TrackedView(PostgresTrackingRecorder):
    """A read model's tables plus its single-row tracking table `<name>_tracking`."""

    name: str = ""
    """The projection's name: its tracking table is `<name>_tracking`."""
    tables: tuple[str, ...] = ()
    """The model's own tables, emptied by `reset`."""
    query_indexes: tuple[str, ...] = ()
    """Indexes only the query side uses: a rebuild makes them once its tables are
    full, which costs far less than keeping them up row by row."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        kwargs.setdefault("tracking_table_name", f"{self.name}_tracking")
        super().__init__(datastore, **kwargs)
        schema = Identifier(self.datastore.schema)
        tracking = Identifier(self.tracking_table_name)
        # Locks the row so a second runner's batch waits, then finds its events done.
        self.lock_position_statement = SQL(
            "SELECT notification_id FROM {}.{} WHERE application_name = %s FOR UPDATE"
        ).format(schema, tracking)
        # The model's statements name their tables unqualified, as the schema files do.
        self.search_path_statement = SQL("SET LOCAL search_path TO {}").format(schema)
        self.notify_statement = SQL("NOTIFY {}").format(Identifier(PROJECTIONS_CHANNEL))
        self.reset_statements = [
            SQL("TRUNCATE {}").format(
                SQL(", ").join(SQL("{}.{}").format(schema, Identifier(t)) for t in self.tables)
            ),
            SQL("DELETE FROM {}.{} WHERE application_name <> '__migration__'").format(
                schema, tracking
            ),
        ]

    def position(self) -> int:
        """The position of the last event this view has processed (0 before any)."""
        return self.max_tracking_id(APPLICATION_NAME) or 0

    def write(self, curs: Cursor[DictRow], batch: Batch) -> None:
        """Apply the batch's events (none processed before) to the model's tables."""
        raise NotImplementedError

    def update(self, batch: Batch, tracking: Tracking) -> None:
        """Apply the batch to the model with its tracking, in a transaction of its own."""
        self.commit_batch(batch, tracking, self.write)

    def commit_batch(self, batch: Batch, tracking: Tracking, write: Writer) -> None:
        """Run `write` on the batch's unprocessed events, then record `tracking`, atomically.

        Events at or below the recorded position are dropped, so processing a batch
        again changes nothing. Tracking advances even when no event needed a change.
        """
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self.search_path_statement)
            curs.execute(self.lock_position_statement, (tracking.application_name,))
            row = curs.fetchone()
            done = (row["notification_id"] if row else None) or 0
            if tracking.notification_id <= done:
                return
            fresh = batch if batch and batch[0].position > done else _after(batch, done)
            if fresh:
                fast_json(curs)
                write(curs, fresh)
            self._insert_tracking(curs, tracking)
            curs.execute(self.notify_statement)

    def reset(self) -> None:
        """Empty the model and forget its position, in one transaction (then replay)."""
        with self.datastore.transaction(commit=True) as curs:
            for statement in self.reset_statements:
                curs.execute(statement)


TView = TypeVar("TView", bound=TrackedView)


class BatchProjection(Projection[TView], Generic[TView]):
    """A projection that takes events a batch at a time, its view doing the work.

    `process_event` (the library's per-event entry point) is a batch of one, so the
    library's ProjectionRunner can drive it too.
    """

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.process_batch([Positioned(domain_event, tracking.notification_id)], tracking)

    def process_batch(self, batch: Batch, tracking: Tracking) -> None:
        """Apply `batch` to the view and record `tracking` (its last position) with it."""
        self.view.update(batch, tracking)


class Projector(Protocol):
    """What a runner needs of a projection, whatever its view."""

    name: str

    @property
    def view(self) -> TrackedView: ...

    def process_batch(self, batch: Batch, tracking: Tracking) -> None: ...


def _after(batch: Batch, done: int) -> EventBatch:
    return EventBatch(p for p in batch if p.position > done)


def utc(moment: datetime) -> datetime:
    """`moment` in UTC: values read back from PostgreSQL carry the session's zone."""
    return moment.astimezone(UTC)


def utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


def key_arrays(stream_ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """Tenants and job ids of `stream_ids`, as two arrays for `unnest(%b, %b)`."""
    pairs = [split_stream_id(sid) for sid in stream_ids]
    return [t for t, _ in pairs], [i for _, i in pairs]
