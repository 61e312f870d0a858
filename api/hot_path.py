"""The plain success of the most frequent read, answered without the framework's per-request work.

A routed handler pays for a Request object, its guard, three dependencies, the
signature's parsing and a Response object: two thirds of the CPU of `GET
/api/v1/jobs/{id}` at 1M jobs (BENCHMARKS.md). The plain form of that read (a bearer
token of one tenant, no query string, no rate limit) is answered here from the same
parts and with the same bytes; `tests/api/test_hot_path.py` holds the two answers
equal. Anything else, and anything refused before the answer starts (a token unknown
or revoked, a job not found or deleted, a database error), is left to the routed
handler, which answers it as documented: a read changes nothing, so it can be redone.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

import msgspec

from api.auth import PRINCIPAL_STATE
from api.consistency import POSITION_STATE
from api.parts import STATE_KEY, Parts
from api.schemas import ID_PATTERN, Job, to_job

if TYPE_CHECKING:
    from litestar.types import HTTPScope, Scope, Send

JOB_ROUTE: Final = "/api/v1/jobs/{job_id}"
_BEARER: Final = re.compile(rb"^Bearer +(\S+) *$", re.IGNORECASE)
_JOB_ID: Final = re.compile(ID_PATTERN)
_encode: Final = msgspec.json.Encoder().encode


def serves(scope: HTTPScope) -> bool:
    """Whether the request is the plain read answered here (its route is resolved)."""
    return (
        scope.get("path_template") == JOB_ROUTE
        and scope["method"] == "GET"
        and not scope["query_string"]
    )


async def answer_job(scope: Scope, send: Send) -> bool:
    """Answer `GET /api/v1/jobs/{id}`; False, having sent nothing, to leave it to the route."""
    try:
        job = await _plain_job(scope)
    except Exception:  # not found, deleted, the database: the route says which, as documented
        return False
    if job is None:
        return False
    body = _encode(job)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"etag", b'"%d"' % job.version),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
    return True


async def _plain_job(scope: Scope) -> Job | None:
    parts = scope["app"].state.get(STATE_KEY)
    if not isinstance(parts, Parts) or parts.settings.rate_limit > 0:
        return None
    token = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            token = value
            break
    if token is None or (bearer := _BEARER.match(token)) is None:
        return None
    principal = await parts.tokens.verify(bearer[1].decode("latin-1"))
    job_id = scope["path_params"]["job_id"]
    if principal is None or principal.tenant is None or not _JOB_ID.match(job_id):
        return None
    state = scope["state"]
    state[PRINCIPAL_STATE] = principal  # the access log names the tenant
    queries = parts.queries
    state[POSITION_STATE] = await queries.recent_position()
    return to_job(await queries.get_job(principal.tenant, job_id))
