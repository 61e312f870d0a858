"""Reads the event log in batches for the projections, decoded as the application's mapper does.

The rows come as tuples in binary (no dict per row, no hex text for `state`). Each
is decoded into the same domain event the mapper gives, by the mapper's own
transcoder, less the mapper's per-event work that a batch need do only once per
topic. `ReadAhead` reads the next batch in a thread while the current one is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

from eventsourcing.persistence import StoredEvent, find_id_convertor, pass_through_convertor
from eventsourcing.utils import resolve_topic
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from projections.collector import collector_paused
from projections.tracking import EventBatch, Positioned

if TYPE_CHECKING:
    from eventsourcing.persistence import Mapper
    from eventsourcing.postgres import PostgresApplicationRecorder

# The library's own select_notifications, less the dict rows: the recorder's table
# lock makes positions commit in order, so everything up to the last one read is final.
SELECT_EVENTS: Final = (
    "SELECT notification_id, originator_id, originator_version, topic, state FROM {}.{} "
    "WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
)


class LogReader:
    """Batches of events after a position, as Positioned domain events."""

    def __init__(self, recorder: PostgresApplicationRecorder, mapper: Mapper[Any]) -> None:
        self.datastore = recorder.datastore
        self.mapper = mapper
        self.decoder = EventDecoder(mapper)
        self.statement = SQL(SELECT_EVENTS).format(
            Identifier(self.datastore.schema), Identifier(recorder.events_table_name)
        )

    def read(self, after: int, limit: int) -> EventBatch:
        """Up to `limit` events after position `after`, in log order."""
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row, binary=True) as curs,
        ):
            curs.execute(self.statement, (after, limit), prepare=True)
            rows = curs.fetchall()
        # Paused here too: read ahead, this runs while the collector may be back on.
        with collector_paused():
            return self.decoder.decode(rows)


Row = tuple[int, str, int, str, bytes]
"""An event row: position, stream, version, topic, state."""


class EventDecoder:
    """Rows to positioned domain events, each equal to the mapper's `to_domain_event`.

    The mapper resolves the topic, finds the id convertor and checks for an upcast
    on every event, and wants a StoredEvent made first: a third of the decoding.
    Here that is worked out once per topic; a topic that needs more than the
    transcoder (a cipher, a compressor, an upcast, an id conversion) goes through
    the mapper.
    """

    def __init__(self, mapper: Mapper[Any]) -> None:
        self.mapper = mapper
        self.decode_state = mapper.transcoder.decode
        self.plain = mapper.cipher is None and mapper.compressor is None
        self._classes: dict[str, type | None] = {}

    def decode(self, rows: Sequence[Row]) -> EventBatch:
        """The events of `rows`, in their order."""
        classes = self._classes
        decode_state = self.decode_state
        new = object.__new__
        set_attribute = object.__setattr__
        events = EventBatch()
        add = events.append
        for position, originator, version, topic, state in rows:
            try:
                cls = classes[topic]
            except KeyError:
                cls = self._plain_class(topic)
            if cls is None:
                stored = StoredEvent(originator, version, topic, state)
                add(Positioned(self.mapper.to_domain_event(stored), position))
                continue
            fields = decode_state(state)
            if "class_version" in fields:  # stored by a later version than the class
                stored = StoredEvent(originator, version, topic, state)
                add(Positioned(self.mapper.to_domain_event(stored), position))
                continue
            fields["originator_id"] = originator
            fields["originator_version"] = version
            event: object = new(cls)
            set_attribute(event, "__dict__", fields)
            add(Positioned(event, position))
        return events

    def _plain_class(self, topic: str) -> type | None:
        """The class of `topic` if its events need only the transcoder, else None."""
        cls: type = resolve_topic(topic)
        plain = (
            self.plain
            and getattr(cls, "class_version", 1) == 1
            and find_id_convertor(cls, str) is pass_through_convertor
        )
        found = self._classes[topic] = cls if plain else None
        return found


class ReadAhead:
    """A LogReader that, after a full batch, reads the next one in a thread.

    A batch read ahead is used only if it starts where the caller asks; otherwise
    (a failed write, a restart from the tracking tables) it is dropped and read anew.
    An early read is never wrong: events are immutable, and it merely ends sooner.
    """

    def __init__(self, reader: LogReader) -> None:
        self.reader = reader
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-read")
        self._ahead: tuple[int, int, Future[EventBatch]] | None = None

    def read(self, after: int, limit: int) -> EventBatch:
        """Up to `limit` events after `after`; starts reading the batch after them."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[:2] == (after, limit):
            batch = ahead[2].result()
        else:
            if ahead is not None:
                ahead[2].cancel()
            batch = self.reader.read(after, limit)
        if len(batch) == limit:  # a backlog: the next batch is most likely full too
            last = batch[-1].position
            self._ahead = (last, limit, self._executor.submit(self.reader.read, last, limit))
        return batch

    def close(self) -> None:
        self._ahead = None
        self._executor.shutdown(wait=True, cancel_futures=True)
