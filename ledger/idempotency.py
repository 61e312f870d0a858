"""Idempotency keys: the first answer to a write, kept per tenant in PostgreSQL.

A write that appends events stores its answer in the same transaction as the
events (see `ledger.recorder`), so a retry after a lost answer replays it
instead of appending again. A write refused with a 4xx stores its answer alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL, Identifier

from ledger.errors import IdempotencyKeyReused

StreamVersion = tuple[str, int]
Positions = Mapping[StreamVersion, int]
"""The global position of each appended event, by (stream id, version)."""

TABLE: Final = "idempotency_keys"


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer as first given: replayed byte for byte."""

    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    tenant: str
    key: str
    fingerprint: bytes
    """SHA-256 of the method, path and body: the same key with anything else is refused."""

    @classmethod
    def of(cls, tenant: str, key: str, method: str, path: str, body: bytes) -> IdempotencyKey:
        digest = hashlib.sha256()
        for part in (method.upper().encode(), path.encode(), body):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        return cls(tenant=tenant, key=key, fingerprint=digest.digest())


@dataclass(frozen=True, slots=True)
class PendingAnswer:
    """An answer to store with the events it describes, once their positions are known."""

    key: IdempotencyKey
    render: Callable[[Positions], Answer]


class IdempotencyKeyTaken(Exception):
    """Another request with the same key committed first; its answer stands."""


class IdempotencyStore:
    """Reads and writes stored answers through the event store's datastore."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
        table = Identifier(datastore.schema or "public", TABLE)
        self.select_answer = SQL(
            "SELECT fingerprint, status, body FROM {} WHERE tenant = %s AND key = %s"
        ).format(table)
        self.insert_answer = SQL(
            "INSERT INTO {} (tenant, key, fingerprint, status, body) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant, key) DO NOTHING RETURNING key"
        ).format(table)
        self.insert_answers = SQL(
            "INSERT INTO {} (tenant, key, fingerprint, status, body)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::bytea[], %s::int[], %s::bytea[])"
            " ON CONFLICT (tenant, key) DO NOTHING RETURNING key"
        ).format(table)

    def find(self, key: IdempotencyKey) -> Answer | None:
        """The stored answer for `key`, or None; IdempotencyKeyReused if it was another request."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.select_answer, (key.tenant, key.key), prepare=True)
            row = curs.fetchone()
        if row is None:
            return None
        if bytes(row["fingerprint"]) != key.fingerprint:
            raise IdempotencyKeyReused(key.key)
        return Answer(status=row["status"], body=bytes(row["body"]))

    def remember(self, key: IdempotencyKey, answer: Answer) -> Answer:
        """Store an answer that appended nothing; returns whichever answer was stored first."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                self.insert_answer,
                (key.tenant, key.key, key.fingerprint, answer.status, answer.body),
                prepare=True,
            )
            inserted = curs.fetchone() is not None
        if inserted:
            return answer
        stored = self.find(key)
        return stored if stored is not None else answer
