"""LEDGER_READ_DATABASE_URL: reads from a real streaming replica; writes, tokens on the primary."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ledger.client import LedgerClient, RetryPolicy, Unavailable
from ledger.migrate import migrate
from ledger.settings import Settings
from ledger.tokens import TokenStore
from tests.client.server import serve
from tests.ops.replication import Pair, primary_and_replica

ONCE = RetryPolicy(attempts=1)


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    with primary_and_replica() as started:
        yield started


@pytest.fixture
def replicated(pair: Pair, tmp_path: Path) -> Settings:
    """Settings that write to the primary and read from the replica, on a fresh schema."""
    settings = Settings(
        database_url=pair.primary,
        read_database_url=pair.replica,
        database_schema=f"test_{secrets.token_hex(6)}",
        data_dir=tmp_path,
        poll_interval=0.2,
        min_position_timeout=0.5,
    )
    migrate(settings)
    caught_up(pair)
    return settings


def caught_up(pair: Pair, timeout: float = 10.0) -> None:
    """Wait until the replica has replayed everything the primary has written so far."""
    with psycopg.connect(pair.primary, autocommit=True) as primary:
        (target,) = primary.execute("SELECT pg_current_wal_lsn()").fetchone() or ("",)
    deadline = time.monotonic() + timeout
    with psycopg.connect(pair.replica, autocommit=True) as replica:
        while True:
            row = replica.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
            ).fetchone()
            if row and row[0]:
                return
            assert time.monotonic() < deadline, "the replica did not catch up"
            time.sleep(0.05)


def replay(pair: Pair, action: str) -> None:
    """Pause or resume the replica's replay of the primary's WAL."""
    with psycopg.connect(pair.replica, autocommit=True) as conn:
        conn.execute(f"SELECT pg_wal_replay_{action}()")


def test_reads_come_from_the_replica_and_min_position_waits_for_its_replay(
    pair: Pair, replicated: Settings
) -> None:
    _, token = TokenStore(replicated).create("acme", "writer")
    with serve(replicated) as url, LedgerClient(url, token) as client:
        client.create_job("export", id="job-1")
        assert client.get("job-1").status == "pending"  # waited for the replica

        replay(pair, "pause")
        try:
            started = client.start("job-1")  # the primary takes writes while the replica lags
            with LedgerClient(url, token, read_your_writes=False) as stale:
                assert stale.get("job-1").status == "pending"  # the replica's answer
            waiting = LedgerClient(url, token, retry=ONCE)
            waiting.position = started.position
            with pytest.raises(Unavailable):
                waiting.get("job-1")  # 503: the replica has not replayed that position
            waiting.close()

            # Tokens are checked on the primary: one made now works at once.
            _, fresh = TokenStore(replicated).create("acme", "reader")
            with LedgerClient(url, fresh, read_your_writes=False) as reader:
                assert reader.get("job-1").id == "job-1"
        finally:
            replay(pair, "resume")
        assert client.get("job-1").status == "running"
