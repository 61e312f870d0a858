"""Configuration read from LEDGER_* environment variables, once, at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

from ledger.errors import ConfigurationError

DEFAULT_PORT: Final = 8000
MAX_BODY_BYTES: Final = 1024 * 1024
MAX_HEADER_BYTES: Final = 16 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment."""

    database_url: str | None = None
    """`LEDGER_DATABASE_URL`; None starts the embedded PostgreSQL."""
    read_database_url: str | None = None
    """`LEDGER_READ_DATABASE_URL`: a streaming replica for the query side's reads; None: the
    primary. Writes, projections and token checks always use `database_url`."""
    database_schema: str = "public"
    data_dir: Path = field(default_factory=lambda: Path(".ledger"))
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    admin_token: str | None = None
    run_projections: bool = True
    log_level: str = "INFO"
    log_format: str = "console"
    max_body_bytes: int = MAX_BODY_BYTES
    min_position_timeout: float = 5.0
    pool_min_size: int = 2
    pool_max_size: int = 10
    write_threads: int = 64
    """Threads that carry writes to the group committer (each waits for its commit)."""
    poll_interval: float = 1.0
    secret_key: str | None = None
    """`LEDGER_SECRET_KEY`: encrypts the dialects' signing secrets at rest; None keeps a
    generated key in the data dir."""
    max_header_bytes: int = MAX_HEADER_BYTES
    """`LEDGER_MAX_HEADER_BYTES`: the request's headers together; more is 431."""
    request_timeout: float = 30.0
    """`LEDGER_REQUEST_TIMEOUT`: seconds a request may take before it is answered 503."""
    keep_alive_timeout: float = 5.0
    """`LEDGER_KEEP_ALIVE_TIMEOUT`: seconds an idle HTTP connection is kept open."""
    database_timeout: int = 5
    """`LEDGER_DATABASE_TIMEOUT`: seconds to wait for a database connection before 503."""
    rate_limit: float = 0.0
    """`LEDGER_RATE_LIMIT`: requests per second per credential on the native API; 0 is off."""
    rate_burst: int = 0
    """`LEDGER_RATE_BURST`: requests a credential may send at once (0: one second's worth)."""
    workers: int = 1
    """`LEDGER_WORKERS`: processes `ledger serve` answers requests with (`--workers` overrides)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from `environ` (default: the process environment)."""
        env = os.environ if environ is None else environ
        base = cls()
        return cls(
            database_url=env.get("LEDGER_DATABASE_URL") or None,
            read_database_url=env.get("LEDGER_READ_DATABASE_URL") or None,
            database_schema=env.get("LEDGER_DATABASE_SCHEMA", base.database_schema),
            data_dir=Path(env.get("LEDGER_DATA_DIR", str(base.data_dir))),
            host=env.get("LEDGER_HOST", base.host),
            port=_int(env, "LEDGER_PORT", base.port),
            admin_token=env.get("LEDGER_ADMIN_TOKEN") or None,
            run_projections=_bool(env, "LEDGER_RUN_PROJECTIONS", base.run_projections),
            log_level=env.get("LEDGER_LOG_LEVEL", base.log_level).upper(),
            log_format=env.get("LEDGER_LOG_FORMAT", base.log_format),
            max_body_bytes=_int(env, "LEDGER_MAX_BODY_BYTES", base.max_body_bytes),
            min_position_timeout=_float(
                env, "LEDGER_MIN_POSITION_TIMEOUT", base.min_position_timeout
            ),
            pool_min_size=_int(env, "LEDGER_POOL_MIN_SIZE", base.pool_min_size),
            pool_max_size=_int(env, "LEDGER_POOL_MAX_SIZE", base.pool_max_size),
            write_threads=_int(env, "LEDGER_WRITE_THREADS", base.write_threads),
            poll_interval=_float(env, "LEDGER_POLL_INTERVAL", base.poll_interval),
            secret_key=env.get("LEDGER_SECRET_KEY") or None,
            max_header_bytes=_int(env, "LEDGER_MAX_HEADER_BYTES", base.max_header_bytes),
            request_timeout=_float(env, "LEDGER_REQUEST_TIMEOUT", base.request_timeout),
            keep_alive_timeout=_float(env, "LEDGER_KEEP_ALIVE_TIMEOUT", base.keep_alive_timeout),
            database_timeout=_int(env, "LEDGER_DATABASE_TIMEOUT", base.database_timeout),
            rate_limit=_float(env, "LEDGER_RATE_LIMIT", base.rate_limit),
            rate_burst=_int(env, "LEDGER_RATE_BURST", base.rate_burst),
            workers=_positive(env, "LEDGER_WORKERS", base.workers),
        )

    def for_reads(self) -> Settings:
        """The settings the query side connects with: the read replica's URL when set."""
        if self.read_database_url is None:
            return self
        return replace(self, database_url=self.read_database_url)

    def with_database(self, url: str) -> Settings:
        """A copy that points at `url` (used once the embedded server is up)."""
        return replace(self, database_url=url)


@dataclass(frozen=True, slots=True)
class ConnectionParams:
    """A PostgreSQL URL split into the parts libpq-style clients take."""

    host: str
    port: int
    user: str
    password: str
    dbname: str


def parse_database_url(url: str) -> ConnectionParams:
    """Split `postgresql://user:pass@host:port/db?host=/socket/dir` into its parts."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(f"LEDGER_DATABASE_URL must start with postgresql://, got {url!r}")
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "localhost"])[0]
    port = int(query.get("port", [str(parts.port or 5432)])[0])
    dbname = unquote(parts.path.lstrip("/")) or "postgres"
    return ConnectionParams(
        host=host,
        port=port,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        dbname=dbname,
    )


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise ConfigurationError(f"{name} must be at least 1, got {env.get(name)!r}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "y", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "n", "off"):
        return False
    raise ConfigurationError(f"{name} must be true or false, got {raw!r}")
