"""A server trusts a token it read live for a second; a revocation waits that second out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg.sql import SQL, Identifier

from ledger.settings import Settings
from ledger.tokens import TRUSTED_FOR, AsyncTokenVerifier, TokenStore
from projections.queries import JobQueryService


@pytest.fixture
async def verifier(settings: Settings) -> AsyncIterator[AsyncTokenVerifier]:
    queries = await JobQueryService.connect(settings)
    yield AsyncTokenVerifier(queries.pool, settings.database_schema, None)
    await queries.close()


async def test_a_token_trusted_while_it_is_revoked_is_refused_once_revoke_returns(
    settings: Settings, verifier: AsyncTokenVerifier
) -> None:
    store = TokenStore(settings)
    token_id, token = store.create("acme", "reader")
    assert await verifier.verify(token) is not None
    began = time.monotonic()
    revoking = asyncio.create_task(asyncio.to_thread(store.revoke, token_id))
    while not revoking.done():  # trusted or read anew, as it happens: both are allowed
        await verifier.verify(token)
        await asyncio.sleep(0.01)
    assert await revoking
    assert time.monotonic() - began >= TRUSTED_FOR
    assert await verifier.verify(token) is None


def revoke_behind_the_stores_back(settings: Settings, token_id: str) -> None:
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        revoke = SQL("UPDATE {} SET revoked_at = now() WHERE id = %s")
        conn.execute(revoke.format(Identifier(settings.database_schema, "api_tokens")), [token_id])


async def test_a_trusted_token_is_not_read_again_while_trusted(
    settings: Settings, verifier: AsyncTokenVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ledger.tokens.TRUSTED_FOR", 60.0)
    token_id, token = TokenStore(settings).create("acme", "reader")
    assert await verifier.verify(token) is not None
    revoke_behind_the_stores_back(settings, token_id)
    assert await verifier.verify(token) is not None


async def test_a_revocation_behind_the_stores_back_counts_within_the_trust(
    settings: Settings, verifier: AsyncTokenVerifier
) -> None:
    token_id, token = TokenStore(settings).create("acme", "reader")
    assert await verifier.verify(token) is not None
    revoke_behind_the_stores_back(settings, token_id)
    await asyncio.sleep(TRUSTED_FOR)
    assert await verifier.verify(token) is None


async def test_trust_is_in_the_whole_token_not_its_id(
    settings: Settings, verifier: AsyncTokenVerifier
) -> None:
    token_id, token = TokenStore(settings).create("acme", "writer")
    assert await verifier.verify(token) is not None
    assert await verifier.verify(f"ltk_{token_id}.forged") is None
