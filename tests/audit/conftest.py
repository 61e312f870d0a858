"""The API on real PostgreSQL, tokens of each role, and `ledger` as real processes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from ledger.settings import Settings
from ledger.tokens import TokenStore
from tests.api.helpers import Client, Headers
from tests.e2e.processes import Ledger, ledger_command

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Commands(Ledger):
    """Runs `ledger` commands as real processes, and starts ones to watch or kill."""

    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start a command and leave it running; its output comes through pipes."""
        process = subprocess.Popen(
            [*ledger_command(), *args], env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.processes.append(process)
        return process

    def close(self) -> None:
        super().close()
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with AsyncTestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def token_for(settings: Settings) -> Callable[[str | None, str], Headers]:
    """Headers with a new token of `tenant` (None: global) and `role`."""
    tokens = TokenStore(settings)

    def make(tenant: str | None, role: str) -> Headers:
        _, token = tokens.create(tenant, role, label="test")
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def writer(token_for: Callable[[str | None, str], Headers]) -> Headers:
    return token_for("acme", "writer")


@pytest.fixture
def auditor(token_for: Callable[[str | None, str], Headers]) -> Headers:
    return token_for("acme", "auditor")


@pytest.fixture
def cli(settings: Settings, tmp_path: Path) -> Iterator[Commands]:
    """`ledger` as a real process on the test's database and schema."""
    assert settings.database_url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(
        LEDGER_DATABASE_URL=settings.database_url,
        LEDGER_DATABASE_SCHEMA=settings.database_schema,
        LEDGER_POLL_INTERVAL="0.2",
        LEDGER_LOG_LEVEL="WARNING",
    )
    ledger = Commands(env=env, cwd=tmp_path)
    try:
        yield ledger
    finally:
        ledger.close()
