"""How the event store connects: the library's POSTGRES_* environment, built from Settings."""

from __future__ import annotations

from ledger.errors import ConfigurationError
from ledger.settings import Settings, parse_database_url


def persistence_env(settings: Settings, *, create_table: bool = False) -> dict[str, str]:
    """The `eventsourcing` environment for `settings`'s database."""
    if settings.database_url is None:
        raise ConfigurationError("no database URL: start the embedded server first")
    params = parse_database_url(settings.database_url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "ORIGINATOR_ID_TYPE": "text",
        "APPLICATION_RECORDER_TOPIC": "ledger.recorder:LedgerRecorder",
        "TRANSCODER_TOPIC": "ledger.transcoder:StateTranscoder",
        "MAPPER_TOPIC": "ledger.transcoder:EventMapper",
        "POSTGRES_DBNAME": params.dbname,
        "POSTGRES_HOST": params.host,
        "POSTGRES_PORT": str(params.port),
        "POSTGRES_USER": params.user,
        "POSTGRES_PASSWORD": params.password,
        "POSTGRES_SCHEMA": settings.database_schema,
        "POSTGRES_POOL_SIZE": str(settings.pool_max_size),
        "POSTGRES_MAX_OVERFLOW": "10",
        # No ping before each use: it costs a round trip per transaction, and a dead
        # connection fails the write with OperationalError, which is answered 503.
        "POSTGRES_PRE_PING": "n",
        "POSTGRES_CONN_MAX_AGE": "600",
        "POSTGRES_LOCK_TIMEOUT": "5",
        # How long a write waits for a connection: past it, a database that is down is
        # answered 503 rather than held for the library's default 30 s.
        "POSTGRES_CONNECT_TIMEOUT": str(settings.database_timeout),
        "IS_SNAPSHOTTING_ENABLED": "y",
        "CREATE_TABLE": "y" if create_table else "n",
    }
