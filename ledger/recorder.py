"""The event recorder: the library's PostgreSQL recorder, plus what is written with events.

In the transaction that appends events, after the library's own statements (table
lock, NOTIFY, insert), it writes each event's chain hash and the stored answers of
the writes that carried an idempotency key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from ledger.chain import GENESIS, link
from ledger.idempotency import IdempotencyKeyTaken, IdempotencyStore, PendingAnswer


class LedgerRecorder(PostgresApplicationRecorder):
    """Appends events with the library's statements (its table lock keeps the global
    order gap-free for subscribers), their chain hashes, and the answers of the
    writes that carry an idempotency key, all in one transaction."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answers = IdempotencyStore(self.datastore)
        schema = Identifier(self.datastore.schema or "public")
        self.select_previous_hashes = SQL(
            "SELECT e.originator_id, h.hash"
            " FROM unnest(%s::text[], %s::bigint[]) AS k(id, version)"
            " JOIN {schema}.{events} e"
            "   ON e.originator_id = k.id AND e.originator_version = k.version"
            " JOIN {schema}.event_hashes h ON h.position = e.notification_id"
        ).format(schema=schema, events=Identifier(self.events_table_name))
        self.insert_hashes = SQL(
            "INSERT INTO {schema}.event_hashes (position, hash)"
            " SELECT * FROM unnest(%s::bigint[], %s::bytea[])"
        ).format(schema=schema)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        answers: Sequence[PendingAnswer] = kwargs.get("answers", ())
        failure: Exception | None = None
        inserted: Sequence[int] | None = None
        with self.datastore.get_connection() as conn:
            with conn.pipeline() as pipeline:
                try:
                    # An exception in this block rolls back everything it wrote.
                    with conn.transaction():
                        events_cursor, hashes_cursor = conn.cursor(), conn.cursor()
                        # Pipelined: the lock, NOTIFY and insert go with the read of the
                        # hashes the new events chain to, in one round trip.
                        self._insert_stored_events(events_cursor, stored_events, **kwargs)
                        previous = self._select_previous_hashes(hashes_cursor, stored_events)
                        pipeline.sync()
                        inserted = self._fetch_ids_after_insert_events(events_cursor, stored_events)
                        assert inserted is not None
                        hashes = chain_hashes(stored_events, previous(hashes_cursor))
                        events_cursor.execute(
                            self.insert_hashes, (list(inserted), hashes), prepare=True
                        )
                        if answers:
                            self._insert_answers(hashes_cursor, stored_events, inserted, answers)
                            pipeline.sync()
                            if len(hashes_cursor.fetchall()) != len(answers):
                                raise IdempotencyKeyTaken("a key of this append was used first")
                except Exception as error:
                    # Kept until the pipeline is closed, as the library does.
                    failure = error
            if failure is not None:
                # Raised here, inside the connection, so the datastore translates it.
                raise failure
        return inserted

    def _select_previous_hashes(
        self, curs: Cursor[DictRow], events: Sequence[StoredEvent]
    ) -> Callable[[Cursor[DictRow]], dict[str, bytes]]:
        """Queue the read of each stream's last stored hash; returns how to collect it."""
        # The events of one stream arrive in version order: only each stream's first
        # event here may chain to a hash already in the table.
        firsts: dict[str, int] = {}
        for event in events:
            firsts.setdefault(str(event.originator_id), event.originator_version)
        wanted = [(stream, version - 1) for stream, version in firsts.items() if version > 1]
        if not wanted:
            return lambda _: {}
        curs.execute(
            self.select_previous_hashes,
            ([s for s, _ in wanted], [v for _, v in wanted]),
            prepare=True,
        )
        return lambda c: {row["originator_id"]: bytes(row["hash"]) for row in c.fetchall()}

    def _insert_answers(
        self,
        curs: Cursor[DictRow],
        events: Sequence[StoredEvent],
        inserted: Sequence[int],
        answers: Sequence[PendingAnswer],
    ) -> None:
        positions = {
            (str(e.originator_id), e.originator_version): position
            for e, position in zip(events, inserted, strict=True)
        }
        rows = [(answer.key, answer.render(positions)) for answer in answers]
        curs.execute(
            self.answers.insert_answers,
            (
                [key.tenant for key, _ in rows],
                [key.key for key, _ in rows],
                [key.fingerprint for key, _ in rows],
                [rendered.status for _, rendered in rows],
                [rendered.body for _, rendered in rows],
            ),
            prepare=True,
        )


def chain_hashes(events: Sequence[StoredEvent], last: dict[str, bytes]) -> list[bytes]:
    """Each event's chain hash, given the last stored hash of each stream."""
    last = dict(last)
    hashes = []
    for event in events:
        stream = str(event.originator_id)
        digest = link(
            last.get(stream, GENESIS), stream, event.originator_version, event.topic, event.state
        )
        last[stream] = digest
        hashes.append(digest)
    return hashes
