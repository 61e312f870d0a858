"""Fixtures for fault tests: a schema of the test's own, and `ledger serve` processes on it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from psycopg import sql

from ledger.migrate import migrate
from ledger.settings import Settings
from tests.e2e.processes import Ledger
from tests.reliability.harness import ADMIN_TOKEN, Cluster, environment


def cluster_on(url: str, tmp_path: Path, **env: str) -> Iterator[Cluster]:
    schema = f"rel_{secrets.token_hex(6)}"
    # One key for the test and its servers, so credentials made here can be read there.
    key = Fernet.generate_key().decode()
    settings = Settings(
        database_url=url,
        database_schema=schema,
        admin_token=ADMIN_TOKEN,
        data_dir=tmp_path,
        secret_key=key,
    )
    migrate(settings)
    ledger = Ledger(env=environment(url, schema, LEDGER_SECRET_KEY=key, **env), cwd=tmp_path)
    try:
        yield Cluster(settings, ledger)
    finally:
        ledger.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def cluster(database_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """`ledger` processes on the run's PostgreSQL, in a freshly migrated schema."""
    yield from cluster_on(database_url, tmp_path)


@pytest.fixture(scope="module")
def module_cluster(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Like `cluster`, shared by a module's tests (each uses job ids of its own)."""
    yield from cluster_on(database_url, tmp_path_factory.mktemp("cluster"))
