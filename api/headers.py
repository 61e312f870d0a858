"""Setting a header on an ASGI response-start message, for the before_send hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from litestar.types import HTTPResponseStartEvent


def put_header(message: HTTPResponseStartEvent, name: bytes, value: str) -> None:
    """Set `name` (lower case) to `value`, replacing any value it had.

    Every answer passes here twice (request id, log position): Litestar's
    `MutableScopeHeaders` cost four times as much for the same change.
    """
    headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != name]
    headers.append((name, value.encode("latin-1")))
    message["headers"] = headers
