"""Rate limiting per credential: a token bucket for each bearer token, in this process.

Off unless `LEDGER_RATE_LIMIT` is set. Each token may send `rate` requests a second on
average and `burst` at once; past that it is answered 429 with Retry-After. Buckets live
in the process, so N replicas allow N times the rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from api.problems import ApiError, Problem

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection

    from ledger.settings import Settings

STATE_KEY: Final = "ledger_rate_limiter"


class TooManyRequests(ApiError):
    """The credential sent more requests than its rate allows."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"too many requests from this credential; retry in {self.retry_after} s")

    def problem(self) -> Problem:
        return Problem(
            429,
            "too-many-requests",
            "Too many requests",
            str(self),
            {"retry_after": self.retry_after},
            {"Retry-After": str(self.retry_after)},
        )


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by credential (a token's id)."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = float(burst if burst > 0 else max(1, math.ceil(rate)))
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, credential: str) -> None:
        """Spend one request of `credential`'s allowance; TooManyRequests when none is left."""
        now = self._clock()
        bucket = self._buckets.get(credential)
        if bucket is None:
            bucket = self._buckets[credential] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < 1:
            raise TooManyRequests((1 - bucket.tokens) / self.rate)
        bucket.tokens -= 1


def rate_limiter(settings: Settings) -> RateLimiter | None:
    """The limiter `settings` ask for, or None when rate limiting is off."""
    if settings.rate_limit <= 0:
        return None
    return RateLimiter(settings.rate_limit, settings.rate_burst)


def limit_rate(connection: ASGIConnection[Any, Any, Any, Any], credential: str) -> None:
    """Count a request of `credential` against the app's limiter, if it has one."""
    limiter = connection.app.state.get(STATE_KEY)
    if isinstance(limiter, RateLimiter):
        limiter.take(credential)
