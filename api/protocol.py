"""The HTTP/1.1 protocol the API is served with: uvicorn's httptools, with heads bounded.

httptools (a C parser) costs a fraction of h11's interpreter time per request, but reads
a request head of any size. The app answers 431 past `max_header_bytes` (api/limits.py);
here a head still incomplete past uvicorn's `h11_max_incomplete_event_size` (twice that,
set by `ledger.server.uvicorn_config`) is answered 431 and its connection closed unread,
as h11 does with the same setting.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from api.limits import headers_too_large
from api.problems import PROBLEM_JSON
from api.request_id import HEADER as REQUEST_ID_HEADER
from api.request_id import new_request_id

if TYPE_CHECKING:
    import asyncio

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
