"""A transaction's statements queued whole and sent in one write, then their results read.

psycopg's pipeline sends each statement as it is executed, and waits on the socket
between statements, letting go of the interpreter lock each time; in a busy worker,
taking it back can take milliseconds. For an append that is time the table lock is held
and every other writer waits: sampled during batched ingest, the server waited for the
client's next message in 44% of the time it held the lock. Here libpq queues every
message of the transaction (in pipeline mode it sends nothing until asked) and the whole
is then flushed at once, so the server has the commit before it has finished the insert.
"""

from __future__ import annotations

import select
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from psycopg import Connection, errors
from psycopg.pq import DiagnosticField, ExecStatus, Format, TransactionStatus

BINARY: Final = Format.BINARY
# Names of the statements prepared on each connection (a connection's prepared
# statements live as long as its session).
_prepared: weakref.WeakKeyDictionary[Connection[Any], set[bytes]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Statement:
    """A statement with its parameters, all in binary format, prepared as `name` on first use."""

    sql: bytes
    name: bytes | None = None
    params: Sequence[bytes] = ()
    types: Sequence[int] = ()


def run_at_once(conn: Connection[Any], statements: Sequence[Statement]) -> list[Any]:
    """Run `statements` in one transaction, every message sent before any result is read.

    Returns each statement's result (a `psycopg.pq.PGresult`), in order. The first error
    is raised as psycopg's exception for its SQLSTATE, with the transaction rolled back.
    `conn` is in autocommit mode, idle and not in a pipeline.
    """
    pgconn = conn.pgconn
    prepared = _prepared.setdefault(conn, set())
    preparing = list(
        {s.name: s for s in statements if s.name is not None and s.name not in prepared}.values()
    )
    # Blocking while it sends: libpq then writes the whole without the interpreter lock
    # (reading meanwhile, so neither side waits on the other), where a nonblocking send
    # would take the lock back after every socket buffer's worth.
    pgconn.nonblocking = 0
    pgconn.enter_pipeline_mode()
    try:
        for statement in preparing:
            assert statement.name is not None
            pgconn.send_prepare(statement.name, statement.sql, statement.types or None)
        if preparing:
            # Preparing an insert locks its table (row exclusive) till the end of the
            # transaction: prepared inside the one that then takes the exclusive lock, two
            # processes preparing at once would deadlock. So they end on a sync of their own.
            pgconn.pipeline_sync()
        pgconn.send_query_params(b"BEGIN", None)
        for statement in statements:
            formats = [BINARY] * len(statement.params)
            if statement.name is None:
                pgconn.send_query_params(
                    statement.sql, statement.params or None, statement.types or None, formats
                )
            else:
                pgconn.send_query_prepared(statement.name, statement.params or None, formats)
        pgconn.send_query_params(b"COMMIT", None)
        pgconn.pipeline_sync()
        pgconn.flush()
        prepares = _read_until_sync(conn) if preparing else []
        results = _read_until_sync(conn)
        pgconn.exit_pipeline_mode()
    except BaseException:
        conn.close()  # mid-way through the protocol: no use to anyone after
        raise
    finally:
        if not conn.closed:
            pgconn.nonblocking = 1  # as psycopg wants it
    # A statement stays prepared whatever happens to the transaction after it.
    prepared.update(
        s.name
        for s, r in zip(preparing, prepares, strict=True)
        if s.name is not None and r.status == ExecStatus.COMMAND_OK
    )
    failure = next((r for r in prepares + results if r.status == ExecStatus.FATAL_ERROR), None)
    if failure is not None:
        if pgconn.transaction_status == TransactionStatus.INERROR:
            conn.execute("ROLLBACK")
        if failure.error_field(DiagnosticField.SQLSTATE) == b"26000" and not preparing:
            # Deallocated since (psycopg sends DEALLOCATE ALL after a rollback, for its
            # own): nothing was written, so prepare again and run it once more.
            prepared.clear()
            return run_at_once(conn, statements)
        raise errors.error_from_result(failure, encoding=conn.info.encoding)
    # The results of BEGIN and COMMIT are not the caller's.
    return results[1:-1]


def _read_until_sync(conn: Connection[Any]) -> list[Any]:
    """One result per queued message (the last of each), up to the pipeline's sync."""
    pgconn = conn.pgconn
    results: list[Any] = []
    last: Any = None
    while True:
        while pgconn.is_busy():
            select.select([pgconn.socket], [], [])
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:  # the end of one message's results
            results.append(last)
            last = None
        elif result.status == ExecStatus.PIPELINE_SYNC:
            return results
        else:
            last = result
