"""Reads the event log in batches for the projections, decoded by the application's mapper.

The rows come as tuples in binary (no dict per row, no hex text for `state`), each
turned into the library's StoredEvent and decoded exactly as the write side stored
it. `ReadAhead` reads the next batch in a thread while the current one is written.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

from eventsourcing.persistence import StoredEvent
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

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
        decode = self.mapper.to_domain_event
        return EventBatch(
            Positioned(decode(StoredEvent(originator, version, topic, state)), position)
            for position, originator, version, topic, state in rows
        )


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
