"""Request limits: headers over LEDGER_MAX_HEADER_BYTES are 431, a request over
LEDGER_REQUEST_TIMEOUT is 503 with Retry-After, bodies over LEDGER_MAX_BODY_BYTES 413."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from litestar import Litestar, get
from litestar.response import Stream
from litestar.testing import AsyncTestClient
from litestar.types import Message

from api.app import create_app
from api.limits import RequestLimits
from api.metrics import Metrics
from api.middleware import RequestLayer
from ledger.settings import Settings
from tests.api.helpers import ADMIN, assert_problem


def test_settings_read_the_limits() -> None:
    settings = Settings.from_env(
        {
            "LEDGER_MAX_HEADER_BYTES": "4096",
            "LEDGER_REQUEST_TIMEOUT": "2.5",
            "LEDGER_KEEP_ALIVE_TIMEOUT": "3",
            "LEDGER_DATABASE_TIMEOUT": "4",
        }
    )
    assert settings.max_header_bytes == 4096
    assert settings.request_timeout == 2.5
    assert settings.keep_alive_timeout == 3
    assert settings.database_timeout == 4
    defaults = Settings()
    assert (defaults.max_header_bytes, defaults.request_timeout) == (16 * 1024, 30.0)


async def test_headers_over_the_limit_are_431(settings: Settings) -> None:
    async with AsyncTestClient(create_app(replace(settings, max_header_bytes=4096))) as client:
        fine = await client.get("/api/v1/jobs", headers={**ADMIN, "X-Note": "a" * 3000})
        assert fine.status_code == 200
        big = await client.get("/api/v1/jobs", headers={**ADMIN, "X-Note": "a" * 5000})
        problem = assert_problem(big, 431, "headers-too-large")
        assert "over 4096" in problem["detail"]
        assert big.headers["x-request-id"]


async def test_a_request_over_the_timeout_is_503_with_retry_after(settings: Settings) -> None:
    slow = replace(settings, request_timeout=0.5, min_position_timeout=10)
    async with AsyncTestClient(create_app(slow)) as client:
        began = time.monotonic()
        # A position far ahead keeps the read waiting for projections that never get there.
        answer = await client.get("/api/v1/jobs", params={"min_position": 10**12}, headers=ADMIN)
        took = time.monotonic() - began
        assert_problem(answer, 503, "request-timeout")
        assert answer.headers["retry-after"] == "1"
        assert answer.headers["x-request-id"]
        assert took < 3
        assert (await client.get("/api/v1/jobs", headers=ADMIN)).status_code == 200


async def test_a_body_over_the_limit_is_413(settings: Settings) -> None:
    async with AsyncTestClient(create_app(replace(settings, max_body_bytes=1000))) as client:
        body = b'{"job_type": "' + b"x" * 2000 + b'"}'
        answer = await client.post(
            "/api/v1/jobs", content=body, headers={**ADMIN, "Content-Type": "application/json"}
        )
        assert_problem(answer, 413, "body-too-large")


async def test_a_stream_once_begun_is_not_cut_by_the_timeout() -> None:
    async def ticks() -> AsyncIterator[bytes]:
        for n in range(4):
            await asyncio.sleep(0.25)
            yield f"tick {n}\n".encode()

    @get("/stream", sync_to_thread=False)
    async def stream() -> Stream:
        return Stream(ticks())

    @get("/slow")
    async def slow() -> str:
        await asyncio.sleep(2)
        return "late"

    app = Litestar([stream, slow])
    RequestLayer(Metrics(), RequestLimits(16384, 0.5)).around(app)
    async with AsyncTestClient(app) as client:
        streamed = await client.get("/stream")
        assert streamed.status_code == 200
        assert streamed.text == "".join(f"tick {n}\n" for n in range(4))  # 1 s, past 0.5 s
        assert_problem(await client.get("/slow"), 503, "request-timeout")


async def test_a_cancellation_not_the_timeouts_goes_on_unanswered() -> None:
    # A client gone, or a server shutting down, cancels the request's task: that is not a
    # timeout, and must not be answered as one.
    @get("/slow")
    async def slow() -> str:
        await asyncio.sleep(2)
        return "late"

    app = Litestar([slow])
    RequestLayer(Metrics(), RequestLimits(16384, 5)).around(app)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/slow", "raw_path": b"/slow", "root_path": "",
        "query_string": b"", "headers": [(b"host", b"test")], "server": ("test", 80),
        "client": ("127.0.0.1", 1), "state": {},
    }  # fmt: skip
    request = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
    await asyncio.sleep(0.2)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert sent == []
