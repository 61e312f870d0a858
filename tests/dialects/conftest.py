"""A real HTTP server of the whole app (the vendor SDKs need one), and jobs to serve."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from litestar import Litestar
from psycopg import sql

from api.app import create_app
from api.parts import parts_of
from ledger.application import JobLedger, Written
from ledger.commands import Context, Fail, JobCommand, NewJob, RecordProgress, Start, Succeed
from ledger.credentials import CredentialStore, Issued
from ledger.migrate import migrate
from ledger.persistence import persistence_env
from ledger.settings import Settings
from ledger.tokens import TokenStore

CTX = Context(actor="test-seed", request_id="req-seed")


@dataclass
class Live:
    """The app served on 127.0.0.1:port, with the write side of the same schema."""

    app: Litestar
    port: int
    ledger: JobLedger
    settings: Settings

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def token(self, tenant: str | None, role: str = "reader") -> str:
        return TokenStore(self.settings).create(tenant, role, label="test")[1]

    def credential(self, dialect: str, tenant: str) -> Issued:
        return CredentialStore(self.settings).create(dialect, tenant, label="test")

    def job(
        self, tenant: str, job_id: str, *commands: JobCommand, job_type: str = "sync", **new: Any
    ) -> Written:
        """Create a job, apply `commands`, and wait until the read models show it."""
        written = self.ledger.create_job(
            tenant, NewJob(job_id=job_id, job_type=job_type, **new), CTX
        )
        for command in commands:
            written = self.ledger.record(tenant, job_id, command, CTX)
        self.wait(written.position)
        return written

    def wait(self, position: int) -> None:
        runner = parts_of(self.app.state).runner
        assert runner is not None
        assert runner.wait(position, timeout=10), f"projections did not reach {position}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(settings: Settings) -> Iterator[Live]:
    """uvicorn serving create_app(settings) in a thread, and a ledger on the same schema."""
    app = create_app(settings)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    ledger = JobLedger(env=persistence_env(settings))
    try:
        yield Live(app=app, port=port, ledger=ledger, settings=settings)
    finally:
        ledger.close()
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def live(settings: Settings) -> Iterator[Live]:
    """A server of its own for a test that changes things."""
    with serving(settings) as server:
        yield server


@pytest.fixture(scope="module")
def shared(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One server on a schema of its own for a whole module's read-only tests."""
    schema = f"test_{secrets.token_hex(6)}"
    settings = Settings(
        database_url=database_url,
        database_schema=schema,
        data_dir=tmp_path_factory.mktemp("dialects"),
        poll_interval=0.2,
    )
    migrate(settings)
    try:
        with serving(settings) as server:
            yield server
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def done(**counters: int) -> tuple[JobCommand, ...]:
    """Commands that take a new job through to success."""
    return (Start(), Succeed(counters=counters or None))


def failed(message: str = "boom") -> tuple[JobCommand, ...]:
    return (Start(), Fail(error_message=message))


def running(progress: int = 0) -> tuple[JobCommand, ...]:
    return (Start(), RecordProgress(progress=progress)) if progress else (Start(),)
