"""Credentials of the vendor dialects: issued once, checked on every request.

Tencent (SecretId/SecretKey) and Huawei (AK/SK) callers sign requests with HMAC, which
can only be verified with the secret itself: those secrets are kept encrypted with the
server's key (Fernet: AES-128-CBC with an HMAC-SHA256 tag, from `cryptography`).
Oracle callers send a password in HTTP Basic auth, which only needs comparing: it is
kept as an scrypt hash. Every check reads the table, so a revoke works at once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Final

import psycopg
from cryptography.fernet import Fernet, InvalidToken
from psycopg import sql
from psycopg.rows import dict_row

from ledger.errors import ConfigurationError, InvalidCommand
from ledger.tokens import TENANT_PATTERN

if TYPE_CHECKING:
    import asyncpg

    from ledger.settings import Settings

KEY_FILE: Final = "secret.key"
"""The generated server key, in the data dir, when LEDGER_SECRET_KEY is not set."""

# scrypt's interactive-login parameters (16 MiB, ~50 ms): dear for a guesser, fine per request.
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
_UPPER_DIGITS: Final = string.ascii_uppercase + string.digits
_ALNUM: Final = string.ascii_letters + string.digits
_DUMMY_HASH: Final = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 43 + "="


class Dialect(StrEnum):
    TENCENT = "tencent"
    HUAWEI = "huawei"
    ORACLE = "oracle"


# The names each vendor's scripts read the pair by (its SDKs' own spelling).
ENV_NAMES: Final[dict[Dialect, tuple[str, str]]] = {
    Dialect.TENCENT: ("SECRET_ID", "SECRET_KEY"),
    Dialect.HUAWEI: ("AK", "SK"),
    Dialect.ORACLE: ("USERNAME", "PASSWORD"),
}


@dataclass(frozen=True, slots=True)
class Issued:
    """A new credential: its id (SecretId, AK or username) and its secret, shown once."""

    id: str
    dialect: Dialect
    tenant: str
    secret: str

    def env_lines(self) -> str:
        """What `ledger credentials create` prints: env-style lines a script can source."""
        id_name, secret_name = ENV_NAMES[self.dialect]
        return (
            f"DIALECT={self.dialect}\nTENANT={self.tenant}\n"
            f"{id_name}={self.id}\n{secret_name}={self.secret}\n"
        )


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """A credential as `ledger credentials list` shows it (never the secret)."""

    id: str
    dialect: Dialect
    tenant: str
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Signer:
    """A live HMAC credential: the tenant it acts for and the secret it signs with."""

    id: str
    tenant: str
    secret: str


def server_key(settings: Settings) -> Fernet:
    """The key secrets are encrypted with: LEDGER_SECRET_KEY, else one kept in the data dir.

    The generated key is written once (mode 0600) beside the embedded database, so the
    `ledger credentials` command and `ledger serve` on the same data dir share it.
    """
    raw = settings.secret_key
    if raw is None:
        path = settings.data_dir / KEY_FILE
        raw = _read_or_create_key(path)
    try:
        return Fernet(raw.strip().encode())
    except ValueError:
        raise ConfigurationError(
            "LEDGER_SECRET_KEY must be a Fernet key (32 url-safe base64-encoded bytes)"
        ) from None


def _read_or_create_key(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii")
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text(encoding="ascii")
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as file:
        file.write(key)
    return key.decode("ascii")


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$salt$hash`, salt and hash in base64."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def password_matches(password: str, stored: str | None) -> bool:
    """Constant-time check of `password` against a stored hash (None: unknown user)."""
    _, n, r, p, salt, digest = (stored or _DUMMY_HASH).split("$")
    expected = base64.b64decode(digest)
    candidate = hashlib.scrypt(
        password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
        dklen=len(expected),
    )  # fmt: skip
    return hmac.compare_digest(candidate, expected) and stored is not None


def _new_pair(dialect: Dialect) -> tuple[str, str]:
    """An id and secret shaped like the vendor's own, so its SDKs and scripts accept them."""
    pick = secrets.choice
    match dialect:
        case Dialect.TENCENT:
            return "AKID" + "".join(pick(_ALNUM) for _ in range(32)), "".join(
                pick(_ALNUM) for _ in range(32)
            )
        case Dialect.HUAWEI:
            return "".join(pick(_UPPER_DIGITS) for _ in range(20)), "".join(
                pick(_ALNUM) for _ in range(40)
            )
        case Dialect.ORACLE:
            return f"oig-{secrets.token_hex(6)}", secrets.token_urlsafe(24)


class _Statements:
    def __init__(self, schema: str) -> None:
        table = sql.Identifier(schema, "dialect_credentials")
        self.insert = sql.SQL(
            "INSERT INTO {} (id, dialect, tenant, secret_encrypted, password_hash, label) "
            "VALUES (%s, %s, %s, %s, %s, %s)"
        ).format(table)
        self.select_all = sql.SQL(
            "SELECT id, dialect, tenant, label, created_at, revoked_at FROM {} "
            "ORDER BY created_at, id"
        ).format(table)
        self.revoke = sql.SQL(
            "UPDATE {} SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL RETURNING id"
        ).format(table)


class CredentialStore:
    """Creates, lists and revokes dialect credentials (synchronous: the CLI's side)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.database_url is not None
        self.url = settings.database_url
        self.fernet = server_key(settings)
        self.sql = _Statements(settings.database_schema)

    def create(self, dialect: Dialect | str, tenant: str, label: str | None = None) -> Issued:
        """A new credential of `tenant`; its secret is shown this once."""
        dialect = Dialect(dialect)
        if not re.fullmatch(TENANT_PATTERN, tenant):
            raise InvalidCommand("tenant", f"must match {TENANT_PATTERN}")
        cred_id, secret = _new_pair(dialect)
        encrypted = None if dialect is Dialect.ORACLE else self.fernet.encrypt(secret.encode())
        hashed = hash_password(secret) if dialect is Dialect.ORACLE else None
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                self.sql.insert, (cred_id, dialect.value, tenant, encrypted, hashed, label)
            )
        return Issued(id=cred_id, dialect=dialect, tenant=tenant, secret=secret)

    def list(self) -> list[CredentialInfo]:
        """Every credential, revoked ones included, oldest first."""
        with psycopg.connect(self.url, row_factory=dict_row) as conn:
            rows = conn.execute(self.sql.select_all).fetchall()
        return [
            CredentialInfo(
                id=row["id"],
                dialect=Dialect(row["dialect"]),
                tenant=row["tenant"],
                label=row["label"],
                created_at=row["created_at"],
                revoked_at=row["revoked_at"],
            )
            for row in rows
        ]

    def revoke(self, cred_id: str) -> bool:
        """Revoke a credential at once; False if there is no such live credential."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(self.sql.revoke, (cred_id,)).fetchone() is not None


class AsyncCredentials:
    """Looks credentials up on an asyncpg pool (the API's side), on every request."""

    def __init__(self, pool: asyncpg.Pool, schema: str, fernet: Fernet) -> None:
        self.pool = pool
        self.fernet = fernet
        quoted = '"' + schema.replace('"', '""') + '"'
        self.select_live = (
            f"SELECT tenant, secret_encrypted, password_hash FROM {quoted}.dialect_credentials "
            "WHERE id = $1 AND dialect = $2 AND revoked_at IS NULL"
        )

    async def signer(self, dialect: Dialect, cred_id: str) -> Signer | None:
        """The live HMAC credential `cred_id` of `dialect`, or None."""
        row = await self.pool.fetchrow(self.select_live, cred_id, dialect.value)
        if row is None or row["secret_encrypted"] is None:
            return None
        try:
            secret = self.fernet.decrypt(bytes(row["secret_encrypted"])).decode()
        except InvalidToken:  # encrypted under another server key: unusable here
            return None
        return Signer(id=cred_id, tenant=row["tenant"], secret=secret)

    async def password_user(self, username: str, password: str) -> str | None:
        """The tenant of a live Oracle user whose password this is, else None."""
        row = await self.pool.fetchrow(self.select_live, username, Dialect.ORACLE.value)
        stored = None if row is None else row["password_hash"]
        # scrypt takes ~50 ms of CPU: off the event loop.
        if not await asyncio.to_thread(password_matches, password, stored):
            return None
        assert row is not None
        tenant: str = row["tenant"]
        return tenant
