"""What the dialects share: their services, bearer tokens, rate limits and the raw body."""

from __future__ import annotations

import re
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec
from litestar import Request
from litestar.di import Provide

from api.parts import Parts, parts_of
from ledger.credentials import AsyncCredentials, server_key
from projections.search import JobSearchService

if TYPE_CHECKING:
    from ledger.tokens import Principal

T = TypeVar("T")
_STATE_KEY: Final = "ledger_dialect_parts"
_BEARER: Final = re.compile(r"^Bearer +(?P<token>\S+) *$", re.IGNORECASE)


class RateLimiter:
    """At most `limit` calls per key in any `window` seconds (a sliding log per key)."""

    def __init__(self, limit: int, window: float = 1.0) -> None:
        self.limit = limit
        self.window = window
        self._calls: defaultdict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str) -> bool:
        """Count a call of `key`; False when it is one too many."""
        now = time.monotonic()
        calls = self._calls[key]
        while calls and calls[0] <= now - self.window:
            calls.popleft()
        if len(calls) >= self.limit:
            return False
        calls.append(now)
        return True


@dataclass(slots=True)
class DialectParts:
    """The native parts and what the dialects add: searches, credentials, rate limits."""

    parts: Parts
    search: JobSearchService
    credentials: AsyncCredentials
    limiters: dict[str, RateLimiter] = field(default_factory=dict)

    def limiter(self, name: str, limit: int) -> RateLimiter:
        if name not in self.limiters:
            self.limiters[name] = RateLimiter(limit)
        return self.limiters[name]


def dialect_parts(request: Request[Any, Any, Any]) -> DialectParts:
    """The dialects' parts, made on first use from the ones the app's lifespan opened."""
    state = request.app.state
    known = state.get(_STATE_KEY)
    if isinstance(known, DialectParts):
        return known
    # No await from the check to the store, so concurrent first requests share one set
    # (and one rate limiter); reading the key file once is a short blocking read.
    parts = parts_of(state)
    settings = parts.settings
    fernet = server_key(settings)
    made = DialectParts(
        parts=parts,
        search=JobSearchService(parts.queries.pool),
        credentials=AsyncCredentials(parts.queries.pool, settings.database_schema, fernet),
    )
    state[_STATE_KEY] = made
    return made


async def bearer_principal(request: Request[Any, Any, Any], parts: Parts) -> Principal | None:
    """The principal of an `Authorization: Bearer` ledger token, or None."""
    match = _BEARER.match(request.headers.get("authorization", ""))
    if match is None:
        return None
    return await parts.tokens.verify(match["token"])


def decode(data: bytes, kind: type[T]) -> T:
    """The body as `kind`; an empty body is `{}`. Raises msgspec errors as they come."""
    return msgspec.json.decode(data or b"{}", type=kind)


def documented_body(kind: type[Any]) -> dict[str, Provide]:
    """Handler dependencies that describe the request body as `kind` in the OpenAPI
    document. No handler asks for this dependency, so nothing decodes the body before the
    handler reads its raw bytes (which signatures are checked on); Litestar documents the
    `data` of a handler's dependencies as its request body."""

    def documented(data: Any) -> None:  # never called
        return None

    documented.__annotations__ = {"data": kind, "return": None}
    return {"documented_body": Provide(documented, sync_to_thread=False)}


def missing_field(error: msgspec.ValidationError) -> bool:
    """Whether a decode error is a required field not sent (vs a wrong value)."""
    return str(error).startswith("Object missing required field")


def epoch_ms(moment: datetime | None) -> int | None:
    """Milliseconds since the epoch (the vendors' timestamps)."""
    return None if moment is None else int(moment.timestamp() * 1000)


def from_epoch_ms(value: int) -> datetime | None:
    """The moment of an epoch-milliseconds value; None if no datetime can hold it."""
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def iso_ms(moment: datetime | None) -> str:
    """ISO 8601 UTC with milliseconds and a Z; "" for none (a proto string's default)."""
    if moment is None:
        return ""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"
