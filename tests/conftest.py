"""One real PostgreSQL for the whole run, and a fresh schema for each test.

The server is `LEDGER_TEST_DATABASE_URL` when set, else a testcontainers
PostgreSQL when a Docker engine answers, else the embedded server.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ledger.application import JobLedger
from ledger.persistence import persistence_env
from ledger.settings import Settings


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """The URL of the run's PostgreSQL server."""
    url = os.environ.get("LEDGER_TEST_DATABASE_URL")
    if url:
        yield url
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer  # type: ignore[import-untyped]

        with PostgresContainer("postgres:16", driver=None) as container:
            yield container.get_connection_url()
        return
    from ledger.embedded import start_embedded, stop_embedded

    with tempfile.TemporaryDirectory(prefix="ledger-test-") as folder:
        try:
            yield start_embedded(Path(folder), delete_on_exit=True)
        finally:
            # Before the folder goes: once it is gone nothing can stop the server.
            stop_embedded(Path(folder))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings on a fresh, migrated schema of its own, dropped afterwards."""
    from ledger.migrate import migrate

    schema = f"test_{secrets.token_hex(6)}"
    current = Settings(
        database_url=database_url,
        database_schema=schema,
        data_dir=tmp_path,
        admin_token="test-admin-token",
        poll_interval=0.2,
    )
    migrate(current)
    yield current
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def ledger(settings: Settings) -> Iterator[JobLedger]:
    """The write side on the test's schema."""
    app = JobLedger(env=persistence_env(settings))
    yield app
    app.close()
