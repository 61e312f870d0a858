"""Fixtures that run `ledger` as a real process, on the embedded default or on a given server."""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.e2e.processes import Ledger, postgres_processes

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "e2e-admin-token"


def _environment(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    # Without the project installed, the module still has to be found.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["LEDGER_POLL_INTERVAL"] = "0.2"
    env.update(values)
    return env


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Ledger]:
    """`ledger` on the embedded default, with its data in a folder of the test's own.

    Afterwards no PostgreSQL may still run on that data: the last process out stops it.
    """
    data_dir = tmp_path / "data"
    ledger = Ledger(
        env=_environment(LEDGER_DATA_DIR=str(data_dir), LEDGER_ADMIN_TOKEN=ADMIN_TOKEN),
        cwd=tmp_path,
    )
    try:
        yield ledger
    finally:
        ledger.close()
    left = postgres_processes((data_dir / "pgdata").resolve())
    for line in left:
        os.kill(int(line.split()[0]), signal.SIGTERM)
    assert not left, f"embedded PostgreSQL left running: {left}"


@pytest.fixture
def schema_url(database_url: str) -> Iterator[tuple[str, str]]:
    """The run's PostgreSQL and a schema of the test's own that nothing has migrated yet."""
    schema = f"e2e_{secrets.token_hex(6)}"
    yield database_url, schema
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def external(schema_url: tuple[str, str], tmp_path: Path) -> Iterator[Ledger]:
    """`ledger` with LEDGER_DATABASE_URL set: the run's server, the test's own schema."""
    url, schema = schema_url
    ledger = Ledger(
        env=_environment(LEDGER_DATABASE_URL=url, LEDGER_DATABASE_SCHEMA=schema),
        cwd=tmp_path,
    )
    try:
        yield ledger
    finally:
        ledger.close()
