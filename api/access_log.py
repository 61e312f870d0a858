"""One log line per HTTP request: request id, tenant, method, route, status and duration.

Only these fields are logged, never headers, bodies or query strings, so a token or a
secret cannot reach the log. With LEDGER_LOG_FORMAT=json each field is a JSON member.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Final

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware

from api.request_id import request_id_of
from ledger.tokens import Principal

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

log: Final = logging.getLogger("api.access")
GLOBAL: Final = "*"
"""The tenant logged for a global admin token."""


class AccessLog(ASGIMiddleware):
    """Logs each request once it is answered (or has failed), at INFO."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        began = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, sending)
        finally:
            if log.isEnabledFor(logging.INFO):
                self._log(scope, status, time.perf_counter() - began)

    @staticmethod
    def _log(scope: Scope, status: int, seconds: float) -> None:
        principal = next(
            (v for v in scope.get("state", {}).values() if isinstance(v, Principal)), None
        )
        tenant = None if principal is None else principal.tenant or GLOBAL
        fields = {
            "request_id": request_id_of(scope),
            "tenant": tenant,
            "method": str(scope.get("method", "GET")),
            "route": str(scope.get("path_template") or scope["path"]),
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
        }
        log.info(
            "%s %s %d %.1fms request_id=%s tenant=%s",
            fields["method"],
            fields["route"],
            status,
            fields["duration_ms"],
            fields["request_id"],
            tenant,
            extra={"fields": fields},
        )
