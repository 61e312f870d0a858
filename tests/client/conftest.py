"""A real API server per test, on the test's schema, and a writer token of tenant acme."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from ledger.client import LedgerClient, RetryPolicy
from ledger.settings import Settings
from ledger.tokens import TokenStore
from tests.client.server import serve

FAST_RETRIES = RetryPolicy(attempts=4, backoff=0.05, max_backoff=0.2)


@pytest.fixture
def served_settings(settings: Settings) -> Settings:
    """The test's settings with a short read-your-writes wait, so a 503 comes quickly."""
    return replace(settings, min_position_timeout=0.3)


@pytest.fixture
def base_url(served_settings: Settings) -> Iterator[str]:
    with serve(served_settings) as url:
        yield url


@pytest.fixture
def token(settings: Settings) -> str:
    """A writer token of tenant acme."""
    _, secret = TokenStore(settings).create("acme", "writer", label="client tests")
    return secret


@pytest.fixture
def client(base_url: str, token: str) -> Iterator[LedgerClient]:
    with LedgerClient(base_url, token, retry=FAST_RETRIES) as ledger_client:
        yield ledger_client
