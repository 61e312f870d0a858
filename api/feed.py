"""The event feed: the tenant's events in global order, a page at a time or live (SSE).

`GET /api/v1/events?after=N&limit=M` answers a page and `next`, the position to ask
after next time. With `Accept: text/event-stream` the same feed streams as
Server-Sent Events: each event's `id:` is its position, so a client that reconnects
with `Last-Event-ID` resumes exactly after the last event it got. The stream wakes
on the event table's NOTIFY, polls in case one is lost, sends a comment as a
heartbeat when idle, and ends (closing its listener) when the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Final

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from api.auth import Caller
from api.history import HistoryEvent, history_of, may_audit, to_history_event
from api.parts import parts_of
from api.problems import READ_PROBLEMS, BadField
from api.routing import get
from projections.history import MAX_FEED_PAGE, HistoryService

log = logging.getLogger("api")

EVENT_STREAM: Final = "text/event-stream"
CHANNEL: Final = "ledger_events"
"""The library NOTIFYs this channel (its event table's name) on every append."""
POLL: Final = 1.0
"""Longest wait between reads of the log when a NOTIFY goes missing."""
STREAMS_KEY: Final = "ledger_feed_streams"
LISTENER_NAME: Final = "ledger-feed"
"""application_name of the streams' LISTEN connections, as pg_stat_activity shows them."""
_encoder: Final = msgspec.json.Encoder()

After = Annotated[
    int, QueryParameter(ge=0, le=2**63 - 1, description="Events after this position.")
]
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_FEED_PAGE, description="1 to 1000.")]
Heartbeat = Annotated[
    float,
    QueryParameter(
        ge=0.05, le=300, description="Seconds of quiet after which a live stream sends a comment."
    ),
]


class EventFeed(msgspec.Struct, kw_only=True):
    events: list[HistoryEvent]
    next: int
    """Pass as `after` to get the events that follow (the same value when none came)."""


class Streams:
    """How many live streams this app is serving (they end when their clients go)."""

    def __init__(self) -> None:
        self.open = 0


def streams_of(state: State) -> Streams:
    streams = state.get(STREAMS_KEY)
    if not isinstance(streams, Streams):
        streams = Streams()
        state[STREAMS_KEY] = streams
    return streams


@get("/api/v1/events", guards=[may_audit], tags=["history"], responses=READ_PROBLEMS)
async def event_feed(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    read_position: NamedDependency[int],
    after: After = 0,
    limit: Limit = 100,
    heartbeat: Heartbeat = 15.0,
) -> Response[EventFeed] | ServerSentEvent:
    """The tenant's events in global order (auditor or admin), `limit` after `after`.

    With `Accept: text/event-stream` the feed streams live as Server-Sent Events, `id:`
    being each event's position; reconnect with `Last-Event-ID` to resume after it. A
    comment line is sent after `heartbeat` seconds without events.
    """
    tenant = caller.tenant_filter()
    history = history_of(request)
    if EVENT_STREAM in request.headers.get("accept", ""):
        start = _last_event_id(request.headers.get("last-event-id"), after)
        url = parts_of(request.app.state).settings.database_url or ""
        stream = live(history, url, tenant, start, heartbeat, streams_of(request.app.state))
        # No caching, and no buffering by proxies that honour X-Accel-Buffering (nginx).
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return ServerSentEvent(stream, headers=headers)
    events = await history.feed(tenant, after, limit)
    return Response(
        EventFeed(
            events=[to_history_event(e) for e in events],
            next=events[-1].position if events else after,
        )
    )


async def live(
    history: HistoryService,
    database_url: str,
    tenant: str | None,
    after: int,
    heartbeat: float,
    streams: Streams,
) -> AsyncIterator[ServerSentEventMessage]:
    """Every event after `after`, then each new one as it is appended, until cancelled."""
    streams.open += 1
    woken = asyncio.Event()
    listener = await _listen(database_url, woken.set)
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    try:
        while True:
            woken.clear()  # before the read, so an append during it still wakes us
            events = await history.feed(tenant, after, MAX_FEED_PAGE)
            for event in events:
                yield ServerSentEventMessage(
                    data=_encoder.encode(to_history_event(event)).decode(), id=event.position
                )
                after = event.position
            if events:
                quiet_since = loop.time()
                if len(events) == MAX_FEED_PAGE:
                    continue
            wait = min(POLL, quiet_since + heartbeat - loop.time())
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), wait)
            if loop.time() >= quiet_since + heartbeat:
                yield ServerSentEventMessage(data=None, comment="heartbeat")
                quiet_since = loop.time()
    finally:
        streams.open -= 1
        if listener is not None:
            # No awaiting here: the stream may be ending because its task was cancelled.
            listener.terminate()


async def _listen(database_url: str, wake: Callable[[], None]) -> asyncpg.Connection | None:
    """A connection that calls `wake` on each append; None (polling only) if it fails."""
    try:
        conn = await asyncpg.connect(
            database_url, server_settings={"application_name": LISTENER_NAME}
        )
        await conn.add_listener(CHANNEL, lambda *_: wake())
    except (OSError, asyncpg.PostgresError) as error:
        log.warning("event feed: cannot LISTEN (%s); polling every %.1f s", error, POLL)
        return None
    return conn


def _last_event_id(header: str | None, after: int) -> int:
    """Where a reconnecting client resumes: its Last-Event-ID, else `after`."""
    if header is None or not header.strip():
        return after
    try:
        position = int(header.strip())
    except ValueError:
        raise BadField("Last-Event-ID", f"{header!r} is not an event position") from None
    if position < 0:
        raise BadField("Last-Event-ID", "must not be negative")
    return position


FEED_HANDLERS: Final = (event_feed,)
