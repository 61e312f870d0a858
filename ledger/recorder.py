"""The event recorder: the library's PostgreSQL recorder, plus answers stored with events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder

from ledger.idempotency import IdempotencyKeyTaken, IdempotencyStore, PendingAnswer


class LedgerRecorder(PostgresApplicationRecorder):
    """Appends events with the library's statements (its table lock keeps the global
    order gap-free for subscribers) and stores the answers of the writes that carry
    an idempotency key in the same transaction."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answers = IdempotencyStore(self.datastore)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        answers: Sequence[PendingAnswer] = kwargs.get("answers", ())
        if not answers or not stored_events:
            ids: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
            return ids
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            # An exception anywhere in this block rolls the events back with the answer.
            self._insert_stored_events(curs, stored_events, **kwargs)
            inserted = self._fetch_ids_after_insert_events(curs, stored_events)
            assert inserted is not None
            positions = {
                (str(e.originator_id), e.originator_version): position
                for e, position in zip(stored_events, inserted, strict=True)
            }
            for answer in answers:
                rendered = answer.render(positions)
                key = answer.key
                curs.execute(
                    self.answers.insert_answer,
                    (key.tenant, key.key, key.fingerprint, rendered.status, rendered.body),
                )
                if curs.fetchone() is None:
                    raise IdempotencyKeyTaken(key.key)
        return inserted
