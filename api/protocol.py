"""The HTTP/1.1 protocol the API is served with: uvicorn's httptools, with heads bounded.

httptools (a C parser) costs a fraction of h11's interpreter time per request, but reads
a request head of any size. The app answers 431 past `max_header_bytes` (api/limits.py);
here a head still incomplete past uvicorn's `h11_max_incomplete_event_size` (twice that,
set by `ledger.server.uvicorn_config`) is answered 431 and its connection closed unread,
as h11 does with the same setting.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from api.limits import headers_too_large
from api.problems import PROBLEM_JSON
from api.request_id import HEADER as REQUEST_ID_HEADER
from api.request_id import new_request_id

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

log: Final = logging.getLogger("api")
DEFAULT_MAX_HEAD_BYTES: Final = 32 * 1024
"""The bound when uvicorn's config sets none (twice the default header limit)."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """httptools, refusing a request head that grows past the bound before it ends."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_head_bytes = config.h11_max_incomplete_event_size or DEFAULT_MAX_HEAD_BYTES
        self.reading_head = True
        self.head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(JoinedWrites(transport, self.loop))

    def data_received(self, data: bytes) -> None:
        if self.reading_head:
            # Whole reads: a head that begins inside a read (pipelined after a body) is
            # counted from the next read on, so at most one read late.
            self.head_bytes += len(data)
        super().data_received(data)
        if (
            self.reading_head
            and self.head_bytes > self.max_head_bytes
            and not self.transport.is_closing()
        ):
            self.refuse_head()

    def on_headers_complete(self) -> None:
        self.reading_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.reading_head = True
        self.head_bytes = 0

    def refuse_head(self) -> None:
        """Answer 431 and close: the head is not parsed any further."""
        log.warning("request head over %d bytes refused unread", self.max_head_bytes)
        detail = f"the request's head passed {self.max_head_bytes} bytes before it ended"
        body = headers_too_large(detail).answer().body
        head = [STATUS_LINE[431]]
        for name, value in self.server_state.default_headers:
            head.append(b"%s: %s\r\n" % (name, value))
        head.append(
            b"content-type: %s\r\ncontent-length: %d\r\n%s: %s\r\nconnection: close\r\n\r\n"
            % (
                PROBLEM_JSON.encode(),
                len(body),
                REQUEST_ID_HEADER.lower().encode(),
                new_request_id().encode(),
            )
        )
        self.transport.write(b"".join([*head, body]))
        self.transport.close()


class JoinedWrites(asyncio.Transport):
    """A transport whose writes made in one step of the event loop leave in one send.

    uvicorn writes an answer's head when the app starts it and its body when the app sends
    it, one system call each, and the client is woken for each; the app sends both in the
    same step. A write is held until the next one, which goes out joined to it at once,
    or until the step ends.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.transport = transport
        self.loop = loop
        self.held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.held is None:
            self.held = bytes(data)
            self.loop.call_soon(self.flush)
        else:
            held, self.held = self.held, None
            self.transport.write(held + data)

    def flush(self) -> None:
        if self.held is not None:
            held, self.held = self.held, None
            self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self.held = None
        self.transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def can_write_eof(self) -> bool:
        return self.transport.can_write_eof()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def is_reading(self) -> bool:
        return self.transport.is_reading()

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() + len(self.held or b"")

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.transport.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.transport.get_write_buffer_limits()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.transport.get_protocol()
