"""The API with the history routes, on real PostgreSQL, and tokens of each role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from ledger.settings import Settings
from ledger.tokens import TokenStore
from tests.api.helpers import Client, Headers


def audit_app(settings: Settings) -> Litestar:
    """The service's app; the history routes are part of it."""
    app = create_app(settings)
    registered = {route.path for route in app.routes}
    if "/api/v1/events" not in registered:
        from api.feed import FEED_HANDLERS
        from api.history import HISTORY_HANDLERS

        for handler in (*HISTORY_HANDLERS, *FEED_HANDLERS):
            app.register(handler)
    return app


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with AsyncTestClient(audit_app(settings)) as test_client:
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
