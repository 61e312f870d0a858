"""Load phases over HTTP: closed-loop clients, each on its own keep-alive connection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from bench.http import Connection, Reply
from bench.stats import Run

Step = Callable[[Connection, int], Awaitable[tuple[Reply, int]]]
"""One request by client `n`: its reply and how many operations (events) it carried."""


async def closed_loop(
    base_url: str,
    token: str,
    clients: int,
    seconds: float,
    step: Step,
    ok: tuple[int, ...],
    on_open: Callable[[], object] | None = None,
) -> Run:
    """`clients` connections, each sending its next request when the last one answered.

    Each connection is opened and answers a first request before the next is opened, as
    clients that start one after another do. Connections opened in one burst would all
    go to the server worker that wakes first: it accepts every connection waiting.
    `on_open` is called once they are all open.
    """
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    connections = [Connection(host, port, token) for _ in range(clients)]
    for connection in connections:
        await connection.open()
        await connection.send(connection.prepare("GET", "/health"))
    if on_open is not None:
        on_open()
    latencies: list[float] = []
    counts = [0] * clients
    errors = [0] * clients
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        connection = connections[n]
        while time.perf_counter() < deadline:
            reply, operations = await step(connection, n)
            if reply.status in ok:
                counts[n] += operations
                latencies.append(reply.seconds)
            else:
                errors[n] += 1
                if errors[n] == 1:
                    print(f"    unexpected {reply.status}: {reply.body[:300]!r}", flush=True)

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    for connection in connections:
        await connection.close()
    return Run(operations=sum(counts), seconds=elapsed, latencies=latencies, errors=sum(errors))


async def paced(
    base_url: str,
    token: str,
    rate: float,
    seconds: float,
    send: Callable[[Connection, int], Awaitable[None]],
    clients: int = 32,
) -> None:
    """Send `rate` requests a second (open loop) spread over `clients` connections."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    queue: asyncio.Queue[int | None] = asyncio.Queue()

    async def client() -> None:
        connection = Connection(host, port, token)
        await connection.open()
        while (n := await queue.get()) is not None:
            await send(connection, n)
        await connection.close()

    workers = [asyncio.create_task(client()) for _ in range(clients)]
    started = time.perf_counter()
    n = 0
    while (now := time.perf_counter() - started) < seconds:
        due = int(now * rate)
        while n < due:
            queue.put_nowait(n)
            n += 1
        await asyncio.sleep(0.001)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
