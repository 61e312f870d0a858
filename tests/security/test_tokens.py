"""Bearer tokens: stored only as hashes, compared in constant time, created and used with
their ids in the logs and never their secrets."""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier

from api.app import create_app
from ledger.settings import Settings
from ledger.tokens import TokenStore, secret_matches, split_token


def stored_rows(settings: Settings) -> list[dict[str, Any]]:
    with psycopg.connect(settings.database_url or "", row_factory=dict_row) as conn:
        table = Identifier(settings.database_schema, "api_tokens")
        return conn.execute(SQL("SELECT * FROM {}").format(table)).fetchall()


def test_a_token_is_stored_only_as_the_hash_of_its_secret(settings: Settings) -> None:
    token_id, token = TokenStore(settings).create("acme", "writer", label="ci")
    parts = split_token(token)
    assert parts is not None and parts[0] == token_id
    secret = parts[1]
    (row,) = stored_rows(settings)
    assert bytes(row["secret_hash"]) == hashlib.sha256(secret.encode()).digest()
    for value in row.values():
        text = bytes(value).hex() if isinstance(value, bytes | memoryview) else str(value)
        assert secret not in text and token not in text
        assert secret.encode().hex() not in text


def test_secrets_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr("ledger.tokens.hmac.compare_digest", spy)
    stored = hashlib.sha256(b"right").digest()
    assert secret_matches("right", stored)
    assert not secret_matches("wrong", stored)
    # An unknown id still costs one hash and one comparison, against a dummy.
    assert not secret_matches("right", None)
    assert len(compared) == 3
    assert all(len(a) == len(b) == 32 for a, b in compared)
    assert compared[2][1] != stored


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def token_log() -> Any:
    """Every line of the `ledger.tokens` logger, at DEBUG (on the logger itself: building
    the app reconfigures the root's handlers)."""
    logger = logging.getLogger("ledger.tokens")
    kept, level = Kept(), logger.level
    logger.addHandler(kept)
    logger.setLevel(logging.DEBUG)
    yield kept
    logger.removeHandler(kept)
    logger.setLevel(level)


async def test_creation_and_use_are_logged_by_id_never_by_secret(
    settings: Settings, token_log: Kept
) -> None:
    store = TokenStore(settings)
    token_id, token = store.create("acme", "reader")
    secret = token.rpartition(".")[2]
    wrong = f"{token.rpartition('.')[0]}.{'x' * len(secret)}"
    async with AsyncTestClient(create_app(settings)) as client:
        ok = await client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"})
        refused = await client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {wrong}"})
    assert (ok.status_code, refused.status_code) == (200, 401)
    store.revoke(token_id)
    lines = token_log.lines
    assert any(line.startswith("token created") and token_id in line for line in lines)
    assert any(line.startswith("token used") and token_id in line for line in lines)
    assert any(line.startswith("token refused") and token_id in line for line in lines)
    assert any(line.startswith("token revoked") and token_id in line for line in lines)
    everything = "\n".join(lines)
    assert secret not in everything and "x" * len(secret) not in everything
