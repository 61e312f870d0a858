"""`ledger migrate`: create the event store and apply infra/schema/*.sql, idempotently."""

from __future__ import annotations

import logging
from importlib import resources
from typing import Final

import psycopg
from psycopg import sql

from ledger.application import JobLedger
from ledger.persistence import persistence_env
from ledger.settings import Settings

log = logging.getLogger(__name__)

MIGRATION_LOCK: Final = 0x1ED6E2  # pg_advisory_lock key: one migration at a time


def schema_files() -> list[tuple[str, str]]:
    """(name, SQL) of every schema file, in the order they apply."""
    folder = resources.files("infra.schema")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name, folder.joinpath(name).read_text(encoding="utf-8")) for name in names]


def migrate(settings: Settings) -> list[str]:
    """Bring the database schema up to date; returns the names of the files applied."""
    assert settings.database_url is not None
    schema = settings.database_schema
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            # The library creates its own event table and composite type.
            JobLedger(env=persistence_env(settings, create_table=True)).close()
            applied = []
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
                for name, text in schema_files():
                    conn.execute(text.encode())
                    applied.append(name)
                    log.debug("applied %s", name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied
