"""The plain successes of the most frequent requests, answered without the framework's work.

A routed handler pays for a Request object, its guard, its dependencies, the
signature's parsing and a Response object: two thirds of the CPU of `GET
/api/v1/jobs/{id}`, and half of `POST /api/v1/jobs/{id}/events` (BENCHMARKS.md). The
plain form of these, of `GET /api/v1/jobs`, `GET /api/v1/jobs/running` and `GET
/api/v1/stats` (a bearer token of one tenant, no query string but a list's filters, page
and cursor or a stats `group_by`, no conditional or idempotent write, no rate limit) is
answered here from the same parts and with the same bytes; `tests/api/test_hot_path.py`
holds the answers equal.

Anything else, and anything refused before the answer starts (a token unknown or
revoked, a job not found, a body or transition refused, a job this process has not
cached), is left to the routed handler, which answers it as documented. Nothing has
changed by then: a read changes nothing, and a write is handed on before it is
queued, its body replayed to the route as it came.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl

import msgspec
from eventsourcing.persistence import IntegrityError
from litestar._asgi.utils import is_valid_host

from api.auth import JOB_ID, PRINCIPAL_STATE, WRITERS, bearer_token
from api.consistency import POSITION_STATE
from api.idempotency import ESCAPED_NUL, KEY_HEADER, too_deep
from api.jobs import job_list
from api.params import DEFAULT_FIRST, MAX_CURSOR, MAX_FIRST, MAX_MOMENT, job_query
from api.parts import STATE_KEY, Parts
from api.request_id import request_id_of
from api.schemas import JobEvent, to_command
from api.stats import DEFAULT_GROUPS, group_keys
from api.writes import render_recorded
from ledger.commands import Context
from ledger.errors import LedgerError
from ledger.tokens import Principal, Role
from projections.rows import JobQuery, StatsQuery

if TYPE_CHECKING:
    from litestar.types import HTTPScope, Receive, ReceiveMessage, Scope, Send

LIST_ROUTE: Final = "/api/v1/jobs"
RUNNING_ROUTE: Final = "/api/v1/jobs/running"
JOB_ROUTE: Final = "/api/v1/jobs/{job_id}"
_JOBS_BELOW: Final = "/api/v1/jobs/"
EVENTS_ROUTE: Final = "/api/v1/jobs/{job_id}/events"
STATS_ROUTE: Final = "/api/v1/stats"
_GROUP_BY_ONLY: Final = re.compile(rb"^(?:group_by=[a-z_,]{1,64})?$")
"""No query, or `group_by` alone, spelled without escapes."""
_LIST_FILTERS: Final = frozenset({"job_type", "status"})
_LIST_SCALARS: Final = {
    "start_date": MAX_MOMENT, "end_date": MAX_MOMENT, "after": MAX_CURSOR, "first": 3
}  # fmt: skip
"""The list's parameters given once, and the longest value of each the route takes."""
_FIRST: Final = re.compile(r"^[1-9][0-9]{0,2}$")
_encode: Final = msgspec.json.Encoder().encode
_EVENT: Final = msgspec.json.Decoder(JobEvent)
_READERS: Final = frozenset(Role)
_CONDITIONS: Final = frozenset({KEY_HEADER.lower().encode(), b"if-match"})
"""Headers that make a write idempotent or conditional: the route's to answer."""


Hot = Callable[["Scope", "Receive", "Send"], Awaitable["Receive | None"]]
"""Answers a request (None), or gives the `receive` its route is to read the body from."""
Read = tuple[bytes, list[tuple[bytes, bytes]]]
"""A plain read's answer: its JSON body and the headers beside the routed Response's."""


class HotRoutes:
    """Which hot route a request takes, routed as Litestar's router routes it: the path
    exactly (no root path, no trailing slash), a valid Host, and a job id that no static
    route beside `{job_id}` spells (`/api/v1/jobs/running` is the running set's)."""

    def __init__(self, static: frozenset[str]) -> None:
        self.static = static
        """The names of static routes beside `/api/v1/jobs/{job_id}`."""

    @classmethod
    def of(cls, paths: Iterable[str]) -> HotRoutes:
        """The hot routes of an app with routes at `paths` (Litestar's route paths)."""
        below = [path.split("/")[4] for path in paths if path.startswith(_JOBS_BELOW)]
        return cls(frozenset(name for name in below if not name.startswith("{")))

    def resolve(self, scope: HTTPScope) -> Hot | None:
        """The hot path for the request, if it may have one; its route is then filled in
        (`path_template`, `path_params`) as the router would."""
        if scope.get("root_path") or not _valid_host(scope):
            return None
        path, method, query = scope["path"], scope["method"], scope["query_string"]
        params: dict[str, str] = {}
        if path == LIST_ROUTE:
            hot, route = (answer_list if method == "GET" else None), LIST_ROUTE
        elif path == RUNNING_ROUTE:
            hot, route = (answer_running if method == "GET" and not query else None), RUNNING_ROUTE
        elif path == STATS_ROUTE:
            quick = method == "GET" and _GROUP_BY_ONLY.match(query) is not None
            hot, route = (answer_stats if quick else None), STATS_ROUTE
        else:
            parts = path.split("/")
            job_id = parts[4] if len(parts) in (5, 6) and path.startswith(_JOBS_BELOW) else ""
            if not job_id or job_id in self.static or query:
                return None
            if len(parts) == 5:
                hot, route = (answer_job if method == "GET" else None), JOB_ROUTE
            else:
                quick = parts[5] == "events" and method == "POST"
                hot, route = (record_event if quick else None), EVENTS_ROUTE
            params = {"job_id": job_id}
        if hot is not None:
            scope["path_template"] = route
            scope["path_params"] = params
        return hot


def _valid_host(scope: HTTPScope) -> bool:
    """Litestar's own check of the Host header (it answers 400 to one it refuses)."""
    for name, value in scope["headers"]:
        if name == b"host":
            return is_valid_host(value)
    return True


async def answer_job(scope: Scope, receive: Receive, send: Send) -> Receive | None:
    """`GET /api/v1/jobs/{id}`."""
    return await _read(_plain_job(scope), receive, send)


async def answer_list(scope: Scope, receive: Receive, send: Send) -> Receive | None:
    """`GET /api/v1/jobs` with plain filters, page size and cursor."""
    return await _read(_plain_list(scope), receive, send)


async def answer_running(scope: Scope, receive: Receive, send: Send) -> Receive | None:
    """`GET /api/v1/jobs/running`."""
    return await _read(_plain_running(scope), receive, send)


async def answer_stats(scope: Scope, receive: Receive, send: Send) -> Receive | None:
    """`GET /api/v1/stats`, grouped by default or by a plain `group_by`."""
    return await _read(_plain_stats(scope), receive, send)


async def _read(plain: Awaitable[Read | None], receive: Receive, send: Send) -> Receive | None:
    """Send a plain read's answer, or leave the request to its route (`plain` gave None,
    or raised: a value refused, a job not found or deleted, the database; the route says
    which, as documented)."""
    try:
        read = await plain
    except Exception:
        return receive
    if read is None:
        return receive
    await _answer(send, 200, *read)
    return None


async def _plain_list(scope: Scope) -> Read | None:
    parts, principal = await _caller(scope, _READERS)
    if parts is None or principal is None:
        return None
    query = list_query(scope["query_string"], principal.tenant)
    if query is None:
        return None
    queries = parts.queries
    scope["state"][POSITION_STATE] = await queries.recent_position()
    return _encode(job_list(await queries.list_jobs(query))), []


def list_query(raw: bytes, tenant: str | None) -> JobQuery | None:
    """The list's query when its string is plain: the route's own parameters, none blank,
    each scalar given once and within the route's limits (else None: the route's to
    answer). A value the route would refuse raises its BadField."""
    lists: dict[str, list[str]] = {}
    scalars: dict[str, str] = {}
    # As Litestar parses a query string (litestar._parsers.parse_qsl).
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if not value:
            return None
        if name in _LIST_FILTERS:
            lists.setdefault(name, []).append(value)
        elif name not in scalars and len(value) <= _LIST_SCALARS.get(name, -1):
            scalars[name] = value
        else:
            return None  # another parameter, or a scalar twice or too long
    first = scalars.get("first", str(DEFAULT_FIRST))
    if not _FIRST.match(first) or int(first) > MAX_FIRST:
        return None
    return job_query(
        tenant,
        job_type=lists.get("job_type"),
        status=lists.get("status"),
        start_date=scalars.get("start_date"),
        end_date=scalars.get("end_date"),
        first=int(first),
        after=scalars.get("after"),
    )


async def _plain_running(scope: Scope) -> Read | None:
    parts, principal = await _caller(scope, _READERS)
    if parts is None or principal is None:
        return None
    queries = parts.queries
    scope["state"][POSITION_STATE] = await queries.recent_position()
    # As RunningJobs encodes: the array PostgreSQL joined, as it is.
    return b'{"jobs":%s}' % await queries.running_jobs(principal.tenant), []


async def _plain_stats(scope: Scope) -> Read | None:
    parts, principal = await _caller(scope, _READERS)
    if parts is None or principal is None:
        return None
    raw = scope["query_string"].decode("ascii").removeprefix("group_by=")
    query = StatsQuery(tenant=principal.tenant, group_by=group_keys(raw or DEFAULT_GROUPS))
    queries = parts.queries
    scope["state"][POSITION_STATE] = await queries.recent_position()
    return _encode(await queries.stats(query)), []


async def _plain_job(scope: Scope) -> Read | None:
    parts, principal = await _caller(scope, _READERS)
    job_id = scope["path_params"]["job_id"]
    if parts is None or principal is None or not JOB_ID.match(job_id):
        return None
    assert principal.tenant is not None
    queries = parts.queries
    scope["state"][POSITION_STATE] = await queries.recent_position()
    body, version = await queries.get_job_body(principal.tenant, job_id)
    return body, [(b"etag", b'"%d"' % version)]


async def record_event(scope: Scope, receive: Receive, send: Send) -> Receive | None:
    """`POST /api/v1/jobs/{id}/events`."""
    parts, principal = await _caller(scope, WRITERS)
    job_id = scope["path_params"]["job_id"]
    if parts is None or principal is None or not JOB_ID.match(job_id):
        return receive
    if any(name in _CONDITIONS for name, _ in scope["headers"]):
        return receive
    body, receive = await _body(receive, parts.settings.max_body_bytes)
    if body is None or ESCAPED_NUL in body:
        return receive
    try:
        event = _EVENT.decode(body)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return receive
    if too_deep(event) is not None:
        return receive
    assert principal.tenant is not None
    context = Context(actor=principal.token_id, request_id=request_id_of(scope))
    try:
        pending = parts.ledger.record_now(principal.tenant, job_id, to_command(event), context)
    except LedgerError:
        return receive
    if pending is None:
        return receive
    try:
        # A client that goes away cancels only this wait: the append goes on.
        written = await pending
    except IntegrityError:
        return receive  # another process wrote to the job first: the route decides again
    answer = render_recorded([written])
    headers = [
        (b"etag", b'"%d"' % written.version),
        (b"x-ledger-position", b"%d" % written.position),
    ]
    await _answer(send, answer.status, answer.body, headers)
    return None


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """A JSON answer with the headers the routed handler's Response would have."""
    headers = [(b"content-type", b"application/json"), *headers]
    headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _caller(scope: Scope, roles: frozenset[Role]) -> tuple[Parts | None, Principal | None]:
    """The parts and the bearer's principal, when it is a tenant's token of one of `roles`."""
    parts = scope["app"].state.get(STATE_KEY)
    if not isinstance(parts, Parts) or parts.settings.rate_limit > 0:
        return None, None
    token = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            token = value
            break
    bearer = None if token is None else bearer_token(token.decode("latin-1"))
    if bearer is None:
        return parts, None
    principal = await parts.tokens.verify(bearer)
    if principal is None or principal.tenant is None or principal.role not in roles:
        return parts, None
    scope["state"][PRINCIPAL_STATE] = principal  # the access log names the tenant
    return parts, principal


async def _body(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """The request's body, if within `limit`, and a `receive` that gives the route the
    same messages again (Litestar answers an oversized body 413)."""
    messages: list[ReceiveMessage] = []
    chunks: list[bytes] = []
    size = 0
    complete = False
    while not complete and size <= limit:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break  # the client went away: the route sees it too
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        complete = not message.get("more_body", False)
    body = b"".join(chunks) if complete and size <= limit else None
    replayed = iter(messages)

    async def replay() -> ReceiveMessage:
        return next(replayed, None) or await receive()

    return body, replay
