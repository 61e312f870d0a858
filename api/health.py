"""Liveness and readiness, for orchestrators: no token needed."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, get

from api.parts import parts_of
from api.problems import Unavailable, problem_responses

log = logging.getLogger("api")


class Health(msgspec.Struct, kw_only=True):
    status: str


class Readiness(msgspec.Struct, kw_only=True):
    status: str
    database: str
    position: int
    """The lowest log position every projection has reached."""
    head: int
    """The newest position in the log."""
    lag: int
    """Events not yet projected."""
    projections: str
    """`running` when this process runs them, `external` when another process does."""


@get("/health", tags=["health"])
async def health() -> Health:
    """The process is alive."""
    return Health(status="ok")


@get("/ready", tags=["health"], responses=problem_responses(503))
async def ready(request: Request[Any, Any, Any]) -> Readiness:
    """Ready when the database answers (else 503); says how far the projections lag the log."""
    parts = parts_of(request.app.state)
    try:
        head = await parts.queries.head()
        position = await parts.queries.position()
    except Exception as error:
        log.warning("readiness check failed", exc_info=True)
        raise Unavailable("the database does not answer") from error
    return Readiness(
        status="ready",
        database="ok",
        position=position,
        head=head,
        lag=max(0, head - position),
        projections="running" if parts.runner is not None else "external",
    )
