"""A small keep-alive HTTP/1.1 client for load generation.

General clients spend more CPU per request than the server under test on a 2-core
machine; this one sends prepared requests on persistent connections and reads
just enough of each answer (status, Content-Length body) to time it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    seconds: float


class Connection:
    """One persistent connection; requests on it go one at a time."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host = host
        self.port = port
        self.token = token
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()

    def prepare(self, method: str, path: str, body: bytes = b"", headers: str = "") -> bytes:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.token}\r\n{headers}"
        )
        if body or method in ("POST", "PUT"):
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        return head.encode() + b"\r\n" + body

    async def send(self, request: bytes) -> Reply:
        if self._writer is None:
            await self.open()
        assert self._reader is not None and self._writer is not None
        started = time.perf_counter()
        self._writer.write(request)
        # The head in one read (one wakeup), not a read per header line: the generator's
        # CPU is taken from the server under test.
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as closed:
            raise ConnectionError("server closed the connection") from closed
        status = int(head[9:12])
        lowered = head.lower()
        length = 0
        at = lowered.find(b"\r\ncontent-length:")
        if at >= 0:
            length = int(lowered[at + 17 : lowered.index(b"\r\n", at + 2)])
        elif b"\r\ntransfer-encoding:" in lowered and b"chunked" in lowered:
            body = await self._read_chunked()
            return Reply(status, body, time.perf_counter() - started)
        body = await self._reader.readexactly(length) if length else b""
        return Reply(status, body, time.perf_counter() - started)

    async def _read_chunked(self) -> bytes:
        assert self._reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self._reader.readline()).strip().split(b";")[0], 16)
            if size == 0:
                await self._reader.readline()
                return b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readline()
