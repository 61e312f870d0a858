"""StreamsReader: what rebuilds many jobs at once, read in one query.

Loading one job is two queries (its latest snapshot, then the events after it), so a
batch that moves a thousand jobs this process has not cached would make two thousand
round trips. This reads every stream's latest snapshot and the events after it
together, in the order a replay takes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from eventsourcing.persistence import StoredEvent
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

if TYPE_CHECKING:
    from eventsourcing.postgres import PostgresDatastore


class StreamsReader:
    """Each stream's latest snapshot (if any) and every event after it."""

    def __init__(self, datastore: PostgresDatastore, events_table: str, snapshots_table: str):
        self.datastore = datastore
        schema = Identifier(datastore.schema or "public")
        self.statement = SQL(
            "WITH k AS (SELECT DISTINCT id FROM unnest(%b::text[]) AS k(id)),"
            " s AS ("
            "   SELECT k.id, s.originator_version, s.topic, s.state FROM k"
            "   CROSS JOIN LATERAL ("
            "     SELECT originator_version, topic, state FROM {schema}.{snapshots}"
            "     WHERE originator_id = k.id ORDER BY originator_version DESC LIMIT 1"
            "   ) s"
            " )"
            " SELECT id, originator_version, topic, state, 0 AS part FROM s"
            " UNION ALL"
            " SELECT e.originator_id, e.originator_version, e.topic, e.state, 1 FROM k"
            " LEFT JOIN s ON s.id = k.id"
            " JOIN {schema}.{events} e ON e.originator_id = k.id"
            "   AND e.originator_version > coalesce(s.originator_version, 0)"
            " ORDER BY 1, 5, 2"
        ).format(
            schema=schema, snapshots=Identifier(snapshots_table), events=Identifier(events_table)
        )

    def read(self, streams: Sequence[str]) -> dict[str, list[StoredEvent]]:
        """By stream: its snapshot first, then its later events in version order.
        Streams without events are absent."""
        found: dict[str, list[StoredEvent]] = {}
        if not streams:
            return found
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row, binary=True) as curs,
        ):
            curs.execute(self.statement, (list(streams),), prepare=True)
            for stream, version, topic, state, _ in curs.fetchall():
                found.setdefault(stream, []).append(
                    StoredEvent(stream, version, topic, bytes(state))
                )
        return found
