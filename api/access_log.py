"""One log line per HTTP request: request id, tenant, method, route, status and duration.

Only these fields are logged, never headers, bodies or query strings, so a token or a
secret cannot reach the log. With LEDGER_LOG_FORMAT=json each field is a JSON member.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from api.request_id import request_id_of
from ledger.tokens import Principal

if TYPE_CHECKING:
    from litestar.types import Scope

log: Final = logging.getLogger("api.access")
GLOBAL: Final = "*"
"""The tenant logged for a global admin token."""


def log_request(scope: Scope, status: int, seconds: float) -> None:
    """Log a request once it is answered (or has failed), at INFO (`api.middleware` calls it)."""
    if not log.isEnabledFor(logging.INFO):
        return
    principal = next((v for v in scope.get("state", {}).values() if isinstance(v, Principal)), None)
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
