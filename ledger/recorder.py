"""The event recorder: the library's PostgreSQL recorder, plus what is written with events.

In the transaction that appends events, after the library's own statements (table
lock, NOTIFY, insert), it writes each event's chain hash and the stored answers of
the writes that carried an idempotency key.
"""

from __future__ import annotations

import select
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Final

from eventsourcing.persistence import ProgrammingError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import Connection, Cursor, Pipeline
from psycopg.rows import DictRow, TupleRow, tuple_row
from psycopg.sql import SQL, Composable, Identifier

from ledger.arrays import ByteaArray, Int8Array, TextArray, bytea_array, int8_array, text_array
from ledger.at_once import Statement, run_at_once
from ledger.chain import GENESIS, link
from ledger.idempotency import IdempotencyKeyTaken, IdempotencyStore, PendingAnswer

APPEND_CHAINED: Final = b"ledger_append_chained"
"""The name the chained append is prepared under on each connection."""
APPEND_CHAINED_TYPES: Final = (
    TextArray.array_oid, Int8Array.array_oid, TextArray.array_oid, ByteaArray.array_oid,
    TextArray.array_oid, Int8Array.array_oid, ByteaArray.array_oid,
)  # fmt: skip
HEADS_CACHED: Final = 100_000
"""Streams whose last chain hash is kept in memory (about 150 bytes each)."""


class LedgerRecorder(PostgresApplicationRecorder):
    """Appends events with the library's statements (its table lock keeps the global
    order gap-free for subscribers), their chain hashes, and the answers of the
    writes that carry an idempotency key, all in one transaction."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The library's lock and NOTIFY statements, rendered once: it composes them
        # anew for every append (a fifth of a small append's time in the committer).
        self._lock_statements = [
            s.as_bytes(None) if isinstance(s, Composable) else str(s).encode()
            for s in self.lock_table_statements
        ]
        self._notify_statement = (
            SQL("NOTIFY {0}").format(Identifier(self.channel_name)).as_bytes(None)
        )
        self.answers = IdempotencyStore(self.datastore)
        self.heads = ChainHeads()
        schema = Identifier(self.datastore.schema or "public")
        self.select_previous_hashes = SQL(
            "SELECT e.originator_id, h.hash"
            " FROM unnest(%b::text[], %b::bigint[]) AS k(id, version)"
            " JOIN {schema}.{events} e"
            "   ON e.originator_id = k.id AND e.originator_version = k.version"
            " JOIN {schema}.event_hashes h ON h.position = e.notification_id"
        ).format(schema=schema, events=Identifier(self.events_table_name))
        self.insert_hashes = SQL(
            "INSERT INTO {schema}.event_hashes (position, hash)"
            " SELECT * FROM unnest(%b::bigint[], %b::bytea[])"
        ).format(schema=schema)
        # Events and their chain hashes in one statement, when the hashes they chain to
        # are known here: the append is then a single round trip (`at_once.run_at_once`).
        self.append_chained = (
            SQL(
                "WITH new AS ("
                " INSERT INTO {schema}.{events} (originator_id, originator_version, topic, state)"
                " SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bytea[])"
                " RETURNING notification_id, originator_id, originator_version"
                "), chained AS ("
                " INSERT INTO {schema}.event_hashes (position, hash)"
                " SELECT new.notification_id, k.hash FROM new"
                " JOIN unnest($5::text[], $6::bigint[], $7::bytea[]) AS k(id, version, hash)"
                " ON k.id = new.originator_id AND k.version = new.originator_version"
                ") SELECT notification_id FROM new ORDER BY notification_id"
            )
            .format(schema=schema, events=Identifier(self.events_table_name))
            .as_bytes(None)
        )
        self.select_existing = SQL(
            "SELECT originator_id FROM {schema}.{events}"
            " WHERE originator_id = ANY(%b::text[]) AND originator_version = 1"
        ).format(schema=schema, events=Identifier(self.events_table_name))
        # The library's own insert sends an array of a composite type, which psycopg
        # renders as text in Python (about 16,000 events/s at 1,000 a transaction);
        # four arrays in binary reach about 90,000/s. Same table, same columns.
        self.insert_events_arrays = SQL(
            "INSERT INTO {schema}.{events}"
            " (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%b::text[], %b::bigint[], %b::text[], %b::bytea[])"
            " RETURNING notification_id"
        ).format(schema=schema, events=Identifier(self.events_table_name))

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        answers: Sequence[PendingAnswer] = kwargs.get("answers", ())
        known, unknown = self._heads_of(stored_events)
        if not answers:
            return self._insert_chained(stored_events, known, unknown)
        failure: Exception | None = None
        inserted: list[int] = []
        hashes: list[bytes] = []
        rows = _encoded_rows(stored_events)
        with self.datastore.get_connection() as conn:
            with conn.pipeline() as pipeline:
                try:
                    # An exception in this block rolls back everything it wrote.
                    with conn.transaction():
                        # Plain tuples for the positions: a dict per row is 2% of a batch.
                        events_cursor = conn.cursor(row_factory=tuple_row)
                        hashes_cursor = conn.cursor()
                        # Pipelined: the lock, NOTIFY and insert go with the read of the
                        # hashes the new events chain to, in one round trip.
                        self._lock_table(hashes_cursor)
                        self._notify_channel(hashes_cursor)
                        events_cursor.execute(self.insert_events_arrays, rows, prepare=True)
                        previous = self._select_previous_hashes(hashes_cursor, known, unknown)
                        sync_whole(conn, pipeline)
                        inserted = _positions_of(events_cursor, stored_events)
                        hashes = chain_hashes(stored_events, previous(hashes_cursor))
                        events_cursor.execute(self.insert_hashes, (inserted, hashes), prepare=True)
                        if answers:
                            self._insert_answers(hashes_cursor, stored_events, inserted, answers)
                            sync_whole(conn, pipeline)
                            if len(hashes_cursor.fetchall()) != len(answers):
                                raise IdempotencyKeyTaken("a key of this append was used first")
                except Exception as error:
                    # Kept until the pipeline is closed, as the library does.
                    failure = error
            if failure is not None:
                # Raised here, inside the connection, so the datastore translates it.
                raise failure
        self._advance_heads(stored_events, hashes)
        return inserted

    def _heads_of(
        self, events: Sequence[StoredEvent]
    ) -> tuple[dict[str, bytes], list[tuple[str, int]]]:
        """The last stored hash of each stream these events continue: those this process
        knows, and the (stream, version) of those to read from the table."""
        # The events of one stream arrive in version order: only each stream's first
        # event here may chain to a hash already in the table.
        firsts: dict[str, int] = {}
        for event in events:
            firsts.setdefault(str(event.originator_id), event.originator_version)
        known: dict[str, bytes] = {}
        unknown: list[tuple[str, int]] = []
        for stream, version in firsts.items():
            if version > 1:  # a stream's first event chains to nothing
                head = self.heads.get(stream, version - 1)
                if head is None:
                    unknown.append((stream, version - 1))
                else:
                    known[stream] = head
        return known, unknown

    def _advance_heads(self, events: Sequence[StoredEvent], hashes: Sequence[bytes]) -> None:
        """Remember each stream's last hash after `events` are committed with `hashes`."""
        self.heads.update(
            {
                str(e.originator_id): (e.originator_version, h)
                for e, h in zip(events, hashes, strict=True)
            }
        )

    def _insert_chained(
        self,
        stored_events: Sequence[StoredEvent],
        known: dict[str, bytes],
        unknown: list[tuple[str, int]],
    ) -> Sequence[int]:
        """Append events whose chain hashes are worked out before the table is locked:
        the lock, NOTIFY, the events with their hashes, and the commit then go in one
        round trip, with every parameter already encoded. The hashes the events chain to
        that this process doesn't know are read first, outside the lock: they belong to
        committed events (the writes were checked against them), so they cannot change."""
        with self.datastore.get_connection() as conn:
            if unknown:
                with conn.cursor() as heads_cursor:
                    read = self._select_previous_hashes(heads_cursor, known, unknown)
                    known = read(heads_cursor)
            hashes = chain_hashes(stored_events, known)
            streams, versions, topics, states = _encoded_rows(stored_events)
            params = (streams, versions, topics, states, streams, versions, bytea_array(hashes))
            *_, appended = run_at_once(
                conn,
                [
                    *(Statement(s) for s in self._lock_statements),
                    Statement(self._notify_statement),
                    Statement(self.append_chained, APPEND_CHAINED, params, APPEND_CHAINED_TYPES),
                ],
            )
        inserted = _all_appended(
            [int(appended.get_value(row, 0)) for row in range(appended.ntuples)], stored_events
        )
        self._advance_heads(stored_events, hashes)
        return inserted

    def _lock_table(self, curs: Cursor[DictRow]) -> None:
        for statement in self._lock_statements:
            curs.execute(statement, prepare=True)

    def _notify_channel(self, curs: Cursor[DictRow]) -> None:
        curs.execute(self._notify_statement)

    def existing_streams(self, streams: Sequence[str]) -> set[str]:
        """Which of these streams have a first event."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.select_existing, (list(streams),), prepare=True)
            return {row["originator_id"] for row in curs.fetchall()}

    def _select_previous_hashes(
        self, curs: Cursor[DictRow], known: dict[str, bytes], unknown: list[tuple[str, int]]
    ) -> Callable[[Cursor[DictRow]], dict[str, bytes]]:
        """Queue the read of the `unknown` streams' last stored hashes; returns how to
        collect them, with the `known` ones."""
        if not unknown:
            return lambda _: known
        curs.execute(
            self.select_previous_hashes,
            ([s for s, _ in unknown], [v for _, v in unknown]),
            prepare=True,
        )
        return lambda c: known | {row["originator_id"]: bytes(row["hash"]) for row in c.fetchall()}

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


class ChainHeads:
    """The last hash this process committed for each of the most recently written
    streams, so an append need not read it back.

    A hash is looked up by the version it belongs to: if another process has
    appended to the stream since, the version differs and the table is read.
    """

    def __init__(self, maxsize: int = HEADS_CACHED) -> None:
        self._heads: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._maxsize = maxsize
        self._lock = threading.Lock()

    def get(self, stream: str, version: int) -> bytes | None:
        with self._lock:
            head = self._heads.get(stream)
        return head[1] if head is not None and head[0] == version else None

    def update(self, heads: dict[str, tuple[int, bytes]]) -> None:
        with self._lock:
            for stream, head in heads.items():
                self._heads[stream] = head
                self._heads.move_to_end(stream)
            while len(self._heads) > self._maxsize:
                self._heads.popitem(last=False)


def sync_whole(conn: Connection[Any], pipeline: Pipeline) -> None:
    """`pipeline.sync()`, once libpq has sent all it holds of the pipeline's messages.

    psycopg's sync queues the Sync and then waits for results, reading only, while a
    large message (an append of a few hundred kilobytes, over the socket's buffer) may
    not be all sent: PostgreSQL then waits for the rest of it, holding the table lock,
    and every append waits behind. So the output is pushed out first, reading what the
    server sends meanwhile. (Leaving a pipeline, psycopg sends it all before it waits.)
    """
    pgconn = conn.pgconn
    while pgconn.flush():  # 1 while some of the output is not sent
        readable, _, _ = select.select([conn.fileno()], [conn.fileno()], [])
        if readable:
            pgconn.consume_input()
    pipeline.sync()


def _encoded_rows(
    events: Sequence[StoredEvent],
) -> tuple[TextArray, Int8Array, TextArray, ByteaArray]:
    """The events' columns as the insert's array parameters, encoded (ledger.arrays)."""
    return (
        text_array([str(e.originator_id) for e in events]),
        int8_array([e.originator_version for e in events]),
        text_array([e.topic for e in events]),
        bytea_array([e.state for e in events]),
    )


def _positions_of(curs: Cursor[TupleRow], events: Sequence[StoredEvent]) -> list[int]:
    """The positions an insert of `events` returned, one per event, in order."""
    return _all_appended([row[0] for row in curs.fetchall()], events)


def _all_appended(positions: list[int], events: Sequence[StoredEvent]) -> list[int]:
    """`positions`, once checked to hold one position for each of `events`."""
    if len(positions) != len(events):
        raise ProgrammingError(f"appended {len(positions)} of {len(events)} events")
    return positions


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
