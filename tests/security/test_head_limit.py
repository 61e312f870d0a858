"""The HTTP protocol `ledger serve` runs refuses a request head that grows past twice
LEDGER_MAX_HEADER_BYTES before it ends: 431, connection closed, the app never called."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvicorn

from ledger.server import BOUNDED_HTTPTOOLS, http_protocol, uvicorn_config
from ledger.settings import Settings

Message = dict[str, Any]
LIMIT = 1024
"""max_header_bytes: heads are refused unread past twice this."""


class Recorder:
    """An ASGI app that answers 200 with the size of the headers it was given."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(
        self,
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.calls += 1
        size = sum(len(name) + len(value) for name, value in scope["headers"])
        body = str(size).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def served() -> AsyncIterator[tuple[Recorder, int]]:
    app = Recorder()
    settings = Settings(max_header_bytes=LIMIT, log_level="WARNING")
    config = uvicorn_config(app, settings)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield app, sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


def test_httptools_serves_when_installed() -> None:
    assert http_protocol() == BOUNDED_HTTPTOOLS


async def test_a_head_growing_past_twice_the_limit_is_431_and_closed(
    served: tuple[Recorder, int],
) -> None:
    app, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: ledger\r\n")
    # Header lines a little at a time, never ending the head, until just past twice the
    # limit (more would be left unread, and the close would reset the connection).
    for n in range(11):
        writer.write(b"X-Pad-%02d: %s\r\n" % (n, b"p" * 200))
        await writer.drain()
        await asyncio.sleep(0.01)
    answer = await asyncio.wait_for(reader.read(), timeout=5)  # to EOF: the server closed
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ")
    assert b"content-type: application/problem+json" in head
    assert b"x-request-id: req-" in head
    problem = json.loads(body)
    assert problem["type"].endswith("/headers-too-large") and problem["status"] == 431
    assert app.calls == 0
    writer.close()


async def test_heads_under_the_bound_reach_the_app_one_after_another(
    served: tuple[Recorder, int],
) -> None:
    app, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # Five heads of 1.5 times the limit on one connection: together past the bound, each
    # under it, so the count starts again with each request.
    pad = b"p" * int(1.5 * LIMIT)
    for _ in range(5):
        writer.write(b"GET / HTTP/1.1\r\nHost: ledger\r\nX-Pad: " + pad + b"\r\n\r\n")
        status = await asyncio.wait_for(reader.readline(), timeout=5)
        assert status.startswith(b"HTTP/1.1 200 ")
        while (line := await reader.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        assert int(await reader.readexactly(length)) > 1.5 * LIMIT
    assert app.calls == 5
    writer.close()
