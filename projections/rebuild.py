"""Rebuild a read model beside the live one, then swap it in when caught up.

The new tables are made in a schema of their own (`<schema>_rebuild_<name>`) from
the model's own schema file, and the whole log is projected into them while the
live tables keep serving and the runner keeps them current. Several models are
rebuilt in one pass over the log, each event read and decoded once. The indexes
only queries use are made once the tables are full, not kept up row by row. When
the new tables have caught up, one transaction per model locks the live tables
(the runner's next batch for them waits), catches the new ones up to the live
position, drops the live tables, moves the new ones into their place and sets the
model's tracking to where the new tables stand; the runner then carries on from there.

A crash before that transaction commits leaves the live tables untouched; the
next rebuild drops the leftover schema and starts clean.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from time import monotonic
from typing import Final

import psycopg
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL, Identifier

from ledger.application import APPLICATION_NAME
from ledger.errors import LedgerError
from ledger.migrate import schema_files
from ledger.settings import Settings, parse_database_url
from projections.collector import collector_paused
from projections.pump import BATCH_SIZE, Pump
from projections.tracking import PROJECTIONS_CHANNEL, Projector

log = logging.getLogger(__name__)

REBUILD_LOCK: Final = 0x1ED6E4
"""First key of the advisory lock that allows one rebuild of a model at a time."""
LOCK_TIMEOUT: Final = "30s"
"""How long the swap waits for the live tables (a batch or a read in progress)."""

Progress = Callable[[int, int], None]
"""Called with (position reached, head of the log) after each batch."""


class RebuildRunning(LedgerError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a rebuild of {name} is already running")


class UnknownProjection(LedgerError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(f"no projection {name!r}; choose from {', '.join(known)}")


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """A rebuild done: the model, the events it projected, where it stands, how long."""

    name: str
    events: int
    position: int
    seconds: float


def projection_names(settings: Settings) -> list[str]:
    """The names of the projections the runner keeps, in the order it runs them."""
    pump = Pump(settings)
    try:
        return [p.name for p in pump.projections]
    finally:
        pump.close()


def shadow_schema(schema: str, name: str) -> str:
    """The schema a rebuild of `name` builds in (kept under PostgreSQL's 63 bytes)."""
    shadow = f"{schema}_rebuild_{name}"
    if len(shadow) <= 63:
        return shadow
    return f"rebuild_{hashlib.sha256(shadow.encode()).hexdigest()[:32]}"


@dataclass(frozen=True, slots=True)
class Shadow:
    """A model being rebuilt: its live projection, the new one, and where that is built."""

    live: Projector
    fresh: Projector
    schema: str
    indexes: list[str]
    """The statements that make the query-side indexes, once the tables are full."""


def rebuild(
    settings: Settings,
    name: str,
    *,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> Rebuilt:
    """Rebuild the read model `name` from the log and swap it in for the live one."""
    (rebuilt,) = rebuild_models(settings, [name], progress=progress, batch_size=batch_size)
    return rebuilt


def rebuild_models(
    settings: Settings,
    names: Sequence[str],
    *,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> list[Rebuilt]:
    """Rebuild the read models `names` in one pass over the log, then swap each in."""
    assert settings.database_url is not None
    url = settings.database_url
    started = monotonic()
    pump = Pump(settings, batch_size=batch_size)
    try:
        lives = [_projection(pump, name) for name in names]
        with ExitStack() as stack:
            lock = stack.enter_context(psycopg.connect(url, autocommit=True))
            for live in lives:
                if not _try_lock(lock, settings.database_schema, live.name):
                    raise RebuildRunning(live.name)
            shadows = []
            for live in lives:
                schema = shadow_schema(settings.database_schema, live.name)
                _create_shadow(url, schema, live)
                datastore = _datastore(settings, schema)
                stack.callback(datastore.close)
                indexes = _defer_indexes(url, schema, live.view.query_indexes)
                shadows.append(Shadow(live, _like(live, datastore), schema, indexes))
            events = _catch_up(pump, [s.fresh for s in shadows], progress)
            done = []
            for shadow in shadows:
                _create_indexes(url, shadow.indexes)
                more = _swap(settings, pump, shadow.live, shadow.fresh, shadow.schema)
                done.append((shadow.live, events + more, monotonic() - started))
        rebuilt = [Rebuilt(live.name, n, live.view.position(), s) for live, n, s in done]
        if progress is not None:
            position = min(r.position for r in rebuilt)
            progress(position, position)
        return rebuilt
    finally:
        pump.close()


def _projection(pump: Pump, name: str) -> Projector:
    for projection in pump.projections:
        if projection.name == name:
            return projection
    raise UnknownProjection(name, [p.name for p in pump.projections])


def _try_lock(conn: psycopg.Connection[tuple[object, ...]], schema: str, name: str) -> bool:
    row = conn.execute(
        "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (REBUILD_LOCK, f"{schema}/{name}")
    ).fetchone()
    return bool(row and row[0])


def _create_shadow(url: str, shadow: str, live: Projector) -> None:
    """An empty copy of the model's tables, from its schema file, in `shadow` (made anew)."""
    tracking = f"CREATE TABLE IF NOT EXISTS {live.view.tracking_table_name} "
    files = [text for _, text in schema_files() if tracking in text]
    if len(files) != 1:
        raise LedgerError(f"no schema file creates {live.view.tracking_table_name}")
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(shadow)))
        conn.execute(SQL("CREATE SCHEMA {}").format(Identifier(shadow)))
        conn.execute(SQL("SET LOCAL search_path TO {}").format(Identifier(shadow)))
        conn.execute(files[0].encode())


def _datastore(settings: Settings, schema: str) -> PostgresDatastore:
    assert settings.database_url is not None
    params = parse_database_url(settings.database_url)
    return PostgresDatastore(
        params.dbname, params.host, params.port, params.user, params.password,
        pool_size=2, max_overflow=2, schema=schema, originator_id_type="text",
    )  # fmt: skip


def _like(live: Projector, datastore: PostgresDatastore) -> Projector:
    """A projection of the same kind as `live`, writing to `datastore`'s schema."""
    view = type(live.view)(datastore)
    fresh: Projector = type(live)(view)  # type: ignore[call-arg]
    return fresh


def _defer_indexes(url: str, schema: str, names: Sequence[str]) -> list[str]:
    """Drop the indexes `names` from the new tables; the statements that make them again."""
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = %s AND indexname = ANY(%s)",
            (schema, list(names)),
        ).fetchall()
        for index, _ in found:
            conn.execute(SQL("DROP INDEX {}.{}").format(Identifier(schema), Identifier(index)))
    return [str(definition) for _, definition in found]


def _create_indexes(url: str, statements: Sequence[str]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())  # pg_indexes.indexdef: names the schema


def _catch_up(
    pump: Pump,
    projections: Sequence[Projector],
    progress: Progress | None,
    until: int | None = None,
) -> int:
    """Project events after the projections' position into them, side by side: all of
    them, or up to `until`; the number read."""
    read = min(p.view.position() for p in projections)
    total = 0
    head = pump.recorder.max_notification_id() or 0
    lanes = pump.lanes
    while until is None or read < until:
        with collector_paused():
            batch = pump.reader.read(read, pump.batch_size)
        if not batch:
            break
        lanes.send(projections, batch, Tracking(APPLICATION_NAME, batch[-1].position))
        read = batch[-1].position
        total += len(batch)
        head = max(head, read)
        # A batch left in flight, as Pump.step does on a backlog.
        reached = lanes.settle(1 if len(batch) == pump.batch_size else 0)
        if progress is not None and reached:
            progress(min(reached.values()), head)
    reached = lanes.settle(0)
    if progress is not None and reached:
        progress(min(reached.values()), head)
    return total


def _swap(settings: Settings, pump: Pump, live: Projector, fresh: Projector, shadow: str) -> int:
    """Put the caught-up tables in place of the live ones, in one transaction."""
    assert settings.database_url is not None
    schema = Identifier(settings.database_schema)
    view = live.view
    tracking = SQL("{}.{}").format(schema, Identifier(view.tracking_table_name))
    tables = [SQL("{}.{}").format(schema, Identifier(t)) for t in view.tables]
    with psycopg.connect(settings.database_url) as conn, conn.transaction():
        conn.execute(SQL("SET LOCAL lock_timeout = {}").format(LOCK_TIMEOUT))
        conn.execute(
            SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                SQL(", ").join([tracking, *tables])
            )
        )
        row = conn.execute(
            SQL("SELECT notification_id FROM {} WHERE application_name = %s").format(tracking),
            (APPLICATION_NAME,),
        ).fetchone()
        live_position = int(row[0]) if row and row[0] is not None else 0
        # The live tables can't move now; bring the new ones at least as far.
        events = _catch_up(pump, [fresh], None, until=live_position)
        position = fresh.view.position()
        conn.execute(SQL("DROP TABLE {}").format(SQL(", ").join(tables)))
        for table in view.tables:
            conn.execute(
                SQL("ALTER TABLE {}.{} SET SCHEMA {}").format(
                    Identifier(shadow), Identifier(table), schema
                )
            )
        conn.execute(
            SQL(
                "INSERT INTO {} (application_name, notification_id) VALUES (%s, %s) "
                "ON CONFLICT (application_name) DO UPDATE SET notification_id = %s"
            ).format(tracking),
            (APPLICATION_NAME, position, position),
        )
        conn.execute(SQL("DROP SCHEMA {} CASCADE").format(Identifier(shadow)))
        conn.execute(SQL("NOTIFY {}").format(Identifier(PROJECTIONS_CHANNEL)))
    log.info("rebuilt %s up to position %d and swapped it in", live.name, position)
    return events
