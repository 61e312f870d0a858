"""A transaction sent in one write (ledger.at_once): results in order, errors as psycopg's,
nothing left half-written, and the connection fit for the next one."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from ledger.arrays import TextArray, text_array
from ledger.at_once import Statement, run_at_once

INSERT = b"INSERT INTO at_once_rows (name) SELECT * FROM unnest($1::text[]) RETURNING name"


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("CREATE TEMPORARY TABLE at_once_rows (name text PRIMARY KEY)")
        yield connection


def insert(names: list[str]) -> Statement:
    return Statement(INSERT, b"at_once_insert", [text_array(names)], [TextArray.array_oid])


def names(conn: psycopg.Connection[tuple[object, ...]]) -> list[object]:
    return [r[0] for r in conn.execute("SELECT name FROM at_once_rows ORDER BY name")]


def test_each_statements_result_comes_back_in_order(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    results = run_at_once(conn, [Statement(b"SELECT 1"), insert(["a", "b"]), insert(["c"])])
    assert [r.ntuples for r in results] == [1, 2, 1]
    assert results[1].get_value(1, 0) == b"b"
    assert names(conn) == ["a", "b", "c"]


def test_a_failing_statement_rolls_back_the_whole_and_the_connection_goes_on(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    # The first use prepares the insert, then the transaction fails: it stays prepared.
    with pytest.raises(errors.UniqueViolation):
        run_at_once(conn, [insert(["a"]), insert(["x", "a"])])
    assert names(conn) == []
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    run_at_once(conn, [insert(["a"])])
    assert names(conn) == ["a"]


def test_a_transaction_larger_than_the_socket_buffer_is_sent_whole(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    big = [f"{n:06d}" + "x" * 4000 for n in range(500)]  # 2 MB in one message
    (result,) = run_at_once(conn, [insert(big)])
    assert result.ntuples == 500
    assert len(names(conn)) == 500


def test_a_statement_deallocated_since_is_prepared_again(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    run_at_once(conn, [insert(["a"])])
    conn.execute("DEALLOCATE ALL")  # as psycopg does after a rollback of its own
    run_at_once(conn, [insert(["b"])])
    assert names(conn) == ["a", "b"]


def test_preparing_leaves_no_lock_for_the_transaction_to_upgrade(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    # Two processes that each held a lock from preparing an append would deadlock on the
    # exclusive lock the append takes next.
    own_locks = Statement(
        b"SELECT count(*) FROM pg_locks"
        b" WHERE relation = 'at_once_rows'::regclass AND pid = pg_backend_pid()"
    )
    locks, _ = run_at_once(conn, [own_locks, insert(["a"])])
    assert locks.get_value(0, 0) == b"0"
