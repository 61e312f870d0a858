"""Litestar's route decorators, with guards given the route handler itself.

Litestar hands every guard `copy(handler)` on every request: a copy of some fifty
attributes, 15 to 30 us of a read's CPU. Our guards (api/auth.py) never look at the
handler, so the routes that have guards are declared with these decorators instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import litestar
from litestar.handlers import HTTPRouteHandler

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection


class _UncopiedGuards(HTTPRouteHandler):
    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        for guard in self.resolve_guards():
            await guard(connection, self)  # type: ignore[misc]  # made async by resolve_guards


class get(_UncopiedGuards, litestar.get):
    """`litestar.get`, its guards given the handler uncopied."""


class post(_UncopiedGuards, litestar.post):
    """`litestar.post`, its guards given the handler uncopied."""


class delete(_UncopiedGuards, litestar.delete):
    """`litestar.delete`, its guards given the handler uncopied."""
