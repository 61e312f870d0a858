"""Read-your-writes: a read may ask to see at least the log position a write answered with."""

from __future__ import annotations

from typing import Annotated, Any, Final

from litestar import Request
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from api.auth import Caller
from api.parts import parts_of
from api.problems import NotReady

POSITION_HEADER: Final = "X-Ledger-Position"
POSITION_STATE: Final = "ledger_read_position"
RETRY_AFTER: Final = 1
"""Seconds a client should wait before asking again for a position not reached."""

MinPosition = Annotated[
    int | None,
    QueryParameter(
        ge=0,
        le=2**63 - 1,
        description=(
            "Wait until the read models include this log position (a write's `position`); "
            "503 with Retry-After if they don't within the server's timeout."
        ),
    ),
]


async def provide_read_position(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    min_position: MinPosition = None,
) -> int:
    """Dependency: the position the read models have reached, after waiting for `min_position`.

    It takes `caller` so that Litestar resolves caller, position and query service one after
    another: dependencies side by side would cost an anyio task group on every read.
    """
    parts = parts_of(request.app.state)
    queries = parts.queries
    if min_position is None:
        reached = await queries.recent_position()
    else:
        timeout = parts.settings.min_position_timeout
        if not await queries.wait_for_position(min_position, timeout):
            raise NotReady(min_position, await queries.position(), RETRY_AFTER)
        reached = await queries.position()
    request.scope.setdefault("state", {})[POSITION_STATE] = reached
    return reached
