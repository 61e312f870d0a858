"""The API on real PostgreSQL: a test client per test, and tokens made with the real store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from ledger.settings import Settings
from ledger.tokens import TokenStore
from tests.api.helpers import Client, Headers


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    """A client of the whole app; its lifespan runs the projections in-process."""
    async with AsyncTestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def tokens(settings: Settings) -> TokenStore:
    return TokenStore(settings)


@pytest.fixture
def token_for(tokens: TokenStore) -> Callable[[str | None, str], Headers]:
    """Headers with a new token of `tenant` (None: global) and `role`."""

    def make(tenant: str | None, role: str) -> Headers:
        _, token = tokens.create(tenant, role, label="test")
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def writer(token_for: Callable[[str | None, str], Headers]) -> Headers:
    """A writer of tenant acme."""
    return token_for("acme", "writer")


@pytest.fixture
def reader(token_for: Callable[[str | None, str], Headers]) -> Headers:
    """A reader of tenant acme."""
    return token_for("acme", "reader")
