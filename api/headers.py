"""The headers every answer carries, set on its response-start message as it is sent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from api.consistency import POSITION_HEADER, POSITION_STATE
from api.request_id import HEADER as REQUEST_ID_HEADER
from api.request_id import request_id_of

if TYPE_CHECKING:
    from litestar.types import HTTPResponseStartEvent, Scope

_REQUEST_ID: Final = REQUEST_ID_HEADER.lower().encode()
_POSITION: Final = POSITION_HEADER.lower().encode()


def stamp(message: HTTPResponseStartEvent, scope: Scope) -> None:
    """Every answer, errors included, carries the request id (`X-Request-ID`); a read's
    answer the log position it reflects at least (`X-Ledger-Position`). Either replaces
    a value the answer had.

    Set here, in the one layer every request passes (`api.middleware`), rather than by
    Litestar's before_send hooks, which wrap `send` and await each hook on every message.
    """
    ours = [(_REQUEST_ID, request_id_of(scope).encode("latin-1"))]
    reached = scope["state"].get(POSITION_STATE)
    if reached is not None:
        ours.append((_POSITION, b"%d" % reached))
    names = [name for name, _ in ours]
    headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in names]
    message["headers"] = headers + ours
