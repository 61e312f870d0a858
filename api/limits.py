"""Limits on every HTTP request: the size of its headers and how long it may take.

The body's limit is Litestar's `request_max_body_size` (413). Headers over
`max_header_bytes` are answered 431; the HTTP protocol drops a request head a good deal
larger still before it is parsed (api/protocol.py). A request that has not begun its
answer after `request_timeout` seconds is answered 503 with Retry-After (a stream, once
begun, is not cut): a write cut short may still commit, and a retry with the same
Idempotency-Key replays its answer without writing twice. `api.middleware` applies them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from api.problems import PROBLEM_JSON, Problem
from api.request_id import request_id_of

if TYPE_CHECKING:
    from litestar.types import Scope, Send

log: Final = logging.getLogger("api")
_CONTENT_TYPE: Final = (b"content-type", PROBLEM_JSON.encode())


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """431 for oversized headers, 503 for a request whose answer has not begun in time."""

    max_header_bytes: int
    timeout: float

    def oversized(self, scope: Scope) -> Problem | None:
        """The 431 for a request whose headers together are over the limit, else None."""
        size = sum(len(name) + len(value) for name, value in scope["headers"])
        if size <= self.max_header_bytes:
            return None
        return headers_too_large(
            f"the request's headers are {size} bytes, over {self.max_header_bytes}"
        )

    def timed_out(self, scope: Scope) -> Problem:
        """The 503 for a request that has not begun its answer within the timeout."""
        log.warning(
            "request %s timed out after %s s: %s %s",
            request_id_of(scope),
            self.timeout,
            scope.get("method"),
            scope.get("path"),
        )
        detail = f"the request took over {self.timeout:g} s; retry later"
        return Problem(
            503, "request-timeout", "Request timed out", detail, {}, {"Retry-After": "1"}
        )


def headers_too_large(detail: str) -> Problem:
    """The 431 problem, whether the app counted the headers or the protocol refused the head."""
    return Problem(431, "headers-too-large", "Headers too large", detail)


async def answer(send: Send, problem: Problem) -> None:
    """Send `problem` as a whole response, outside Litestar (so with its headers set here;
    `send` is the layer's, which adds the request id)."""
    body = problem.answer().body
    headers = [
        _CONTENT_TYPE,
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in problem.headers.items()),
    ]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
