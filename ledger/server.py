"""Running the service: the database it uses (embedded or given), its schema, and uvicorn."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from types import FrameType
from typing import TYPE_CHECKING, Final, TextIO
from urllib.parse import urlsplit, urlunsplit

from ledger.embedded import PGDATA, start_embedded
from ledger.logs import configure_logging
from ledger.migrate import migrate
from ledger.settings import Settings, parse_database_url

if TYPE_CHECKING:
    from litestar import Litestar
    from uvicorn import Config

log = logging.getLogger(__name__)

BOUNDED_HTTPTOOLS: Final = "api.protocol:BoundedHttpToolsProtocol"
GRACEFUL_SHUTDOWN_SECONDS: Final = 10
"""How long `serve` lets open requests finish after SIGTERM before it closes them."""


class Shutdown(BaseException):
    """SIGINT or SIGTERM arrived: unwind, so the embedded server's exit hook still runs."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def _raise_shutdown(signum: int, _frame: FrameType | None) -> None:
    raise Shutdown(signum)


@contextmanager
def shutdown_on_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into `Shutdown` while the block runs.

    The embedded PostgreSQL stops from an `atexit` hook, which a process killed by
    SIGTERM's default action never runs. uvicorn puts back the handlers it found and
    raises the signal again once it has shut down gracefully, so it lands here too.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_shutdown) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def describe_database(settings: Settings) -> str:
    """Where the data lives, for people: the embedded data folder or the URL without password."""
    if settings.database_url is None:
        return f"embedded PostgreSQL, data in {(settings.data_dir / PGDATA).resolve()}"
    return redact(settings.database_url)


def redact(url: str) -> str:
    """`url` with its password replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def open_database(settings: Settings, *, apply_schema: bool = True) -> Settings:
    """Settings that point at a reachable database with the current schema.

    Without `LEDGER_DATABASE_URL` this starts the embedded server on `data_dir`, or joins
    the one already running there; it stops when the last process using it exits.
    """
    if settings.database_url is None:
        settings = settings.with_database(start_embedded(settings.data_dir))
    else:
        parse_database_url(settings.database_url)  # a malformed URL is a configuration error
    if apply_schema:
        applied = migrate(settings)
        log.info("schema up to date (%s)", ", ".join(applied) or "no files")
    return settings


def serve(settings: Settings, out: TextIO = sys.stdout) -> None:
    """Serve the API (and, by default, the projections) until SIGINT or SIGTERM."""
    import uvicorn

    from api.app import create_app, freeze_startup_heap

    workers = f" with {settings.workers} workers" if settings.workers > 1 else ""
    print(
        f"ledger: serving http://{settings.host}:{settings.port}{workers} "
        f"(database: {describe_database(settings)})",
        file=out,
        flush=True,
    )
    ready = open_database(settings)
    if ready.workers > 1:
        from ledger.workers import serve_workers

        serve_workers(ready)
        return
    app = create_app(ready)
    # Building a Litestar app installs its own root handler; put ours back, so every line,
    # uvicorn's included, follows LEDGER_LOG_FORMAT.
    configure_logging(ready)
    freeze_startup_heap()
    uvicorn.Server(uvicorn_config(app, ready)).run()


def uvicorn_config(app: Litestar | str, settings: Settings, *, workers: int = 1) -> Config:
    """How uvicorn serves `app`: the application, or the import string of the workers' factory."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_level=settings.log_level.lower(),
        log_config=None,  # its loggers go through the handler `ledger` configured
        # api.middleware logs each request once; uvicorn's line would repeat it, query
        # string included.
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        timeout_keep_alive=max(1, round(settings.keep_alive_timeout)),
        # The app answers 431 past max_header_bytes; the protocol refuses a head twice
        # that size unread (both h11 and ours read this setting).
        http=http_protocol(),
        h11_max_incomplete_event_size=2 * settings.max_header_bytes,
        loop="auto",  # uvloop where it is installed
        workers=workers,
        factory=isinstance(app, str),
    )


def http_protocol() -> str:
    """uvicorn's `http`: httptools with request heads bounded (api/protocol.py), else h11."""
    if find_spec("httptools") is None:
        return "h11"
    return BOUNDED_HTTPTOOLS


def run_projections(settings: Settings, out: TextIO = sys.stdout) -> None:
    """Run the projections alone until SIGINT or SIGTERM."""
    from projections.runner import ProjectionsRunner

    print(
        f"ledger: running projections (database: {describe_database(settings)})",
        file=out,
        flush=True,
    )
    runner = ProjectionsRunner(open_database(settings))
    runner.start()
    try:
        threading.Event().wait()
    finally:
        runner.stop()
