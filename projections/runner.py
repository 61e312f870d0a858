"""ProjectionsRunner: keeps the read models up with the log, in a background thread.

It wakes on the event table's NOTIFY and also polls every `settings.poll_interval`
seconds, since a notification is lost when a connection drops. One runner per
schema does the work: it holds a PostgreSQL advisory lock on its own connection,
and a runner in another process waits for that lock and takes over when the
holder dies. (Correctness does not rest on the lock: tracking is checked in
every batch's transaction.) A dropped connection is reopened, never fatal.
"""

from __future__ import annotations

import logging
import threading
from time import monotonic
from types import TracebackType
from typing import Final, Self

import psycopg
from psycopg.sql import SQL, Identifier

from ledger.settings import Settings
from projections.pump import BATCH_SIZE, Pump

log = logging.getLogger(__name__)

LOCK_CLASS: Final = 0x1ED6E3
"""First key of the runner's advisory lock; the second is a hash of the schema."""
TRY_LOCK: Final = SQL("SELECT pg_try_advisory_lock(%s, hashtext(%s)) AS locked")
NOTIFY_SLICE: Final = 0.1
"""Longest single wait, so that stop() is noticed quickly."""


class ProjectionsRunner:
    """Runs the jobs, running-set and stats projections until stopped."""

    def __init__(
        self, settings: Settings, *, batch_size: int = BATCH_SIZE, listen: bool = True
    ) -> None:
        self.settings = settings
        self.listen = listen
        self._pump = Pump(settings, batch_size=batch_size)
        self._stopping = threading.Event()
        self._advanced = threading.Condition()
        self._positions: dict[str, int] = {}
        self._leader = False
        self._thread: threading.Thread | None = None
        self.last_error: BaseException | None = None

    # -- control ---------------------------------------------------------------------

    def start(self) -> None:
        """Start projecting in a background thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="ledger-projections", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop after the batch in hand commits, and release the lock and connections."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pump.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- progress --------------------------------------------------------------------

    @property
    def positions(self) -> dict[str, int]:
        """Each projection's position, as this runner last saw it."""
        with self._advanced:
            return dict(self._positions)

    @property
    def position(self) -> int:
        """The lowest position over the projections (0 before any)."""
        positions = self.positions
        return min(positions.values()) if positions else 0

    @property
    def is_leader(self) -> bool:
        """True while this runner holds the lock and does the projecting."""
        return self._leader

    def wait(self, position: int, timeout: float) -> bool:
        """Block until every projection has reached `position`; False on timeout."""
        with self._advanced:
            return self._advanced.wait_for(lambda: self._lowest() >= position, timeout)

    # -- the thread --------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    self.settings.database_url or "",
                    autocommit=True,
                    application_name=f"ledger-projections:{self.settings.database_schema}"[:63],
                ) as conn:
                    self._lead(conn)
            except Exception as error:
                self.last_error = error
                log.exception("projections: %s; reconnecting", error)
                self._stopping.wait(self.settings.poll_interval)
            finally:
                self._leader = False

    def _lead(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        schema = self.settings.database_schema
        # Wait for the lock; meanwhile follow whoever holds it, so wait() still works.
        standing_by = False
        while not _fetch_bool(conn, TRY_LOCK, (LOCK_CLASS, schema)):
            if not standing_by:
                log.info("projections: another process runs them on schema %s; standing by", schema)
                standing_by = True
            self._publish(self._pump.load_positions())
            if self._stopping.wait(self.settings.poll_interval):
                return
        self._leader = True
        # Said once per lock taken, so operators can see which replica projects.
        log.info("projections: this process runs them on schema %s", schema)
        if self.listen:
            conn.execute(SQL("LISTEN {}").format(Identifier(self._pump.channel)))
        self._publish(self._pump.load_positions())
        while not self._stopping.is_set():
            while not self._stopping.is_set() and self._pump.step(overlap=True):
                self._publish(self._pump.positions)
            self._await_events(conn)

    def _await_events(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        """Return on a NOTIFY, at the next poll, or on stop; raise if `conn` died."""
        deadline = monotonic() + self.settings.poll_interval
        while not self._stopping.is_set():
            remaining = deadline - monotonic()
            if remaining <= 0:
                break
            if self.listen:
                for _ in conn.notifies(timeout=min(remaining, NOTIFY_SLICE), stop_after=1):
                    return
            elif self._stopping.wait(min(remaining, NOTIFY_SLICE)):
                return
        conn.execute("SELECT 1")  # the lock lives on this connection: check it is alive

    def _publish(self, positions: dict[str, int]) -> None:
        with self._advanced:
            self._positions = dict(positions)
            self._advanced.notify_all()

    def _lowest(self) -> int:
        return min(self._positions.values()) if self._positions else 0


def _fetch_bool(
    conn: psycopg.Connection[tuple[object, ...]], query: SQL, params: tuple[object, ...]
) -> bool:
    row = conn.execute(query, params).fetchone()
    return bool(row and row[0])
