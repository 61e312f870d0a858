"""Bearer tokens: issued once, kept as a SHA-256 hash of their secret, checked on every request.

A token reads `ltk_<id>.<secret>`. The id names the row (and is the actor recorded
on events); only the secret's hash is stored. A server trusts a token it has read
from the table for TRUSTED_FOR seconds; a revocation waits that long before it
returns, so a revoked token is refused from the next request on.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Final

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ledger.errors import InvalidCommand

if TYPE_CHECKING:
    import asyncpg

    from ledger.settings import Settings

log = logging.getLogger(__name__)

PREFIX: Final = "ltk_"
ENV_ADMIN_ID: Final = "admin-env"
"""The actor recorded for writes made with LEDGER_ADMIN_TOKEN."""
TENANT_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

TRUSTED_FOR: Final = 1.0
"""Seconds a server trusts a token it has read live; `revoke` waits as long."""
MAX_TRUSTED: Final = 10_000
"""Tokens trusted at once per server; past this the trust starts afresh."""

# Compared against when a token's id is unknown, so a miss costs what a hit costs.
_DUMMY_HASH: Final = hashlib.sha256(b"no such token").digest()


class Role(StrEnum):
    ADMIN = "admin"
    WRITER = "writer"
    READER = "reader"
    AUDITOR = "auditor"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a token's id, its tenant (None: every tenant) and its role."""

    token_id: str
    tenant: str | None
    role: Role


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as `ledger tokens list` shows it (never the secret)."""

    id: str
    tenant: str | None
    role: Role
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


def split_token(token: str) -> tuple[str, str] | None:
    """The (id, secret) of a well-formed token, else None."""
    if not token.startswith(PREFIX):
        return None
    token_id, dot, secret = token[len(PREFIX) :].partition(".")
    if not dot or not token_id or not secret or len(token) > 256:
        return None
    return token_id, secret


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def secret_matches(secret: str, stored_hash: bytes | None) -> bool:
    """Constant-time comparison of a secret against a stored hash (None: unknown id)."""
    expected = _DUMMY_HASH if stored_hash is None else stored_hash
    return hmac.compare_digest(hash_secret(secret), expected) and stored_hash is not None


def env_admin(token: str, admin_token: str | None) -> Principal | None:
    """The global admin when `token` is LEDGER_ADMIN_TOKEN."""
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return Principal(token_id=ENV_ADMIN_ID, tenant=None, role=Role.ADMIN)
    return None


def _check_new(tenant: str | None, role: Role) -> None:
    if tenant is None and role is not Role.ADMIN:
        raise InvalidCommand("tenant", "only an admin token may be global")
    if tenant is not None and not re.fullmatch(TENANT_PATTERN, tenant):
        raise InvalidCommand("tenant", f"must match {TENANT_PATTERN}")


class _Statements:
    """The token table's SQL, qualified with the service's schema."""

    def __init__(self, schema: str) -> None:
        table = sql.Identifier(schema, "api_tokens")
        self.insert = sql.SQL(
            "INSERT INTO {} (id, tenant, role, secret_hash, label) VALUES (%s, %s, %s, %s, %s)"
        ).format(table)
        self.select_all = sql.SQL(
            "SELECT id, tenant, role, label, created_at, revoked_at FROM {} ORDER BY created_at, id"
        ).format(table)
        self.revoke = sql.SQL(
            "UPDATE {} SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL RETURNING id"
        ).format(table)
        self.select_live = sql.SQL(
            "SELECT tenant, role, secret_hash FROM {} WHERE id = %s AND revoked_at IS NULL"
        ).format(table)


class TokenStore:
    """Creates, lists, revokes and verifies tokens (synchronous: the CLI's side)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.database_url is not None
        self.url = settings.database_url
        self.admin_token = settings.admin_token
        self.sql = _Statements(settings.database_schema)

    def create(
        self, tenant: str | None, role: Role | str, label: str | None = None
    ) -> tuple[str, str]:
        """A new token: returns (id, token); the token is shown this once and never stored."""
        role = Role(role)
        _check_new(tenant, role)
        token_id = f"tok_{secrets.token_hex(8)}"
        secret = secrets.token_urlsafe(32)
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                self.sql.insert, (token_id, tenant, role.value, hash_secret(secret), label)
            )
        log.info("token created: id=%s tenant=%s role=%s", token_id, tenant or "*", role.value)
        return token_id, f"{PREFIX}{token_id}.{secret}"

    def list(self) -> list[TokenInfo]:
        """Every token, revoked ones included, oldest first."""
        with psycopg.connect(self.url, row_factory=dict_row) as conn:
            rows = conn.execute(self.sql.select_all).fetchall()
        return [
            TokenInfo(
                id=row["id"],
                tenant=row["tenant"],
                role=Role(row["role"]),
                label=row["label"],
                created_at=row["created_at"],
                revoked_at=row["revoked_at"],
            )
            for row in rows
        ]

    def revoke(self, token_id: str) -> bool:
        """Revoke a token; False if there is no such live token.

        Returns once no server trusts the token any more (TRUSTED_FOR after the commit).
        """
        with psycopg.connect(self.url, autocommit=True) as conn:
            revoked = conn.execute(self.sql.revoke, (token_id,)).fetchone() is not None
        if revoked:
            time.sleep(TRUSTED_FOR)
            log.info("token revoked: id=%s", token_id)
        return revoked

    def verify(self, token: str) -> Principal | None:
        """The principal a token stands for, or None if it is unknown, malformed or revoked."""
        if admin := env_admin(token, self.admin_token):
            return admin
        parts = split_token(token)
        if parts is None:
            return None
        token_id, secret = parts
        with psycopg.connect(self.url, row_factory=dict_row) as conn:
            row = conn.execute(self.sql.select_live, (token_id,)).fetchone()
        if not secret_matches(secret, None if row is None else bytes(row["secret_hash"])):
            return None
        assert row is not None
        return Principal(token_id=token_id, tenant=row["tenant"], role=Role(row["role"]))


class AsyncTokenVerifier:
    """Verifies tokens on an asyncpg pool (the API's side).

    A token read live is trusted for TRUSTED_FOR seconds, counted from before the read,
    so requests don't pay a round trip each. A revocation waits as long before it
    returns (`TokenStore.revoke`): any trust still held then came from a read that
    began after the revocation committed, and so saw it.
    """

    def __init__(self, pool: asyncpg.Pool, schema: str, admin_token: str | None) -> None:
        self.pool = pool
        self.admin_token = admin_token
        quoted = '"' + schema.replace('"', '""') + '"'
        self.select_live = (
            f"SELECT tenant, role, secret_hash FROM {quoted}.api_tokens "
            "WHERE id = $1 AND revoked_at IS NULL"
        )
        # Keyed by a hash of the whole token, so no secret is held longer than a request.
        self._trusted: dict[bytes, tuple[Principal, float]] = {}

    async def verify(self, token: str) -> Principal | None:
        """The principal a token stands for, or None if it is unknown, malformed or revoked."""
        if admin := env_admin(token, self.admin_token):
            return admin
        key = hashlib.sha256(token.encode()).digest()
        trusted = self._trusted.get(key)
        if trusted is not None and time.monotonic() < trusted[1]:
            return trusted[0]
        parts = split_token(token)
        if parts is None:
            return None
        token_id, secret = parts
        read_at = time.monotonic()
        row = await self.pool.fetchrow(self.select_live, token_id)
        if not secret_matches(secret, None if row is None else bytes(row["secret_hash"])):
            # The id a client sent is not a secret; the secret itself is never logged.
            log.info("token refused: id=%s (unknown, revoked or wrong secret)", token_id[:64])
            return None
        assert row is not None
        log.debug("token used: id=%s tenant=%s", token_id, row["tenant"] or "*")
        principal = Principal(token_id=token_id, tenant=row["tenant"], role=Role(row["role"]))
        if len(self._trusted) >= MAX_TRUSTED:
            self._trusted.clear()
        self._trusted[key] = (principal, read_at + TRUSTED_FOR)
        return principal
