"""Limits on every HTTP request: the size of its headers and how long it may take.

The body's limit is Litestar's `request_max_body_size` (413). Headers over
`max_header_bytes` are answered 431; uvicorn drops a request head a good deal larger
still before it is parsed. A request that has not begun its answer after
`request_timeout` seconds is answered 503 with Retry-After (a stream, once begun, is
not cut): a write cut short may still commit, and a retry with the same
Idempotency-Key replays its answer without writing twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware

from api.problems import PROBLEM_JSON, Problem
from api.request_id import HEADER as REQUEST_ID_HEADER
from api.request_id import request_id_of

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

log: Final = logging.getLogger("api")


class RequestLimits(ASGIMiddleware):
    """431 for oversized headers, 503 for a request whose answer has not begun in time."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, max_header_bytes: int, timeout: float) -> None:
        self.max_header_bytes = max_header_bytes
        self.timeout = timeout

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        size = sum(len(name) + len(value) for name, value in scope.get("headers", ()))
        if size > self.max_header_bytes:
            detail = f"the request's headers are {size} bytes, over {self.max_header_bytes}"
            problem = Problem(431, "headers-too-large", "Headers too large", detail)
            await answer(send, scope, problem)
            return
        started = False
        limit = asyncio.timeout(self.timeout)

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                # The answer has begun: a stream (the live event feed) runs on unlimited.
                limit.reschedule(None)
            await send(message)

        try:
            async with limit:
                await next_app(scope, receive, sending)
        except TimeoutError:
            if not limit.expired() or started:
                raise
            log.warning(
                "request %s timed out after %s s: %s %s",
                request_id_of(scope),
                self.timeout,
                scope.get("method"),
                scope.get("path"),
            )
            detail = f"the request took over {self.timeout:g} s; retry later"
            problem = Problem(
                503, "request-timeout", "Request timed out", detail, {}, {"Retry-After": "1"}
            )
            await answer(send, scope, problem)


async def answer(send: Send, scope: Scope, problem: Problem) -> None:
    """Send `problem` as a whole response, below Litestar (so with its headers set here)."""
    body = problem.answer().body
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (REQUEST_ID_HEADER.lower().encode(), request_id_of(scope).encode()),
        *((name.lower().encode(), value.encode()) for name, value in problem.headers.items()),
    ]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
