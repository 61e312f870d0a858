"""The live event feed over a real HTTP server: Server-Sent Events, resumed with
Last-Event-ID while writes go on, heartbeats, and an end when the client goes away."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from litestar import Litestar

from api.app import create_app
from api.feed import LISTENER_NAME, streams_of
from ledger.application import JobLedger
from ledger.commands import Context, NewJob, RecordProgress, Start, Succeed
from ledger.settings import Settings
from tests.api.helpers import Headers
from tests.e2e.processes import free_port
from tests.property.replay import connect

CTX = Context(actor="tok-feed", request_id="req-feed")


@dataclass
class Served:
    url: str
    app: Litestar


@pytest.fixture
def served(settings: Settings) -> Iterator[Served]:
    """The app on a real uvicorn server in a thread of this process."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(15)


@dataclass
class Message:
    id: int | None
    data: dict[str, Any] | None
    comment: str | None


def messages(response: httpx.Response) -> Iterator[Message]:
    """The SSE messages of a streaming response, as they arrive."""
    fields: dict[str, str] = {}
    comment = None
    for line in response.iter_lines():
        if line == "":
            if fields or comment is not None:
                yield Message(
                    int(fields["id"]) if "id" in fields else None,
                    json.loads(fields["data"]) if "data" in fields else None,
                    comment,
                )
            fields, comment = {}, None
        elif line.startswith(":"):
            comment = line[1:].strip()
        else:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def lifecycle(ledger: JobLedger, tenant: str, job_id: str) -> None:
    ledger.create_job(tenant, NewJob(job_id=job_id, job_type="x"), CTX)
    ledger.record(tenant, job_id, Start(), CTX)
    ledger.record(tenant, job_id, RecordProgress(progress=50), CTX)
    ledger.record(tenant, job_id, Succeed(), CTX)


def stream(served: Served, headers: Headers, **params: Any) -> Any:
    return httpx.stream(
        "GET",
        f"{served.url}/api/v1/events",
        params=params,
        headers={**headers, "Accept": "text/event-stream"},
        timeout=httpx.Timeout(10.0),
    )


def test_every_event_arrives_once_across_a_reconnect_while_writes_go_on(
    served: Served,
    settings: Settings,
    ledger: JobLedger,
    token_for: Callable[[str | None, str], Headers],
) -> None:
    auditor = token_for("acme", "auditor")
    for n in range(5):
        lifecycle(ledger, "acme", f"early-{n}")
    stop = threading.Event()
    written: list[tuple[str, int]] = []

    def keep_writing() -> None:
        n = 0
        while not stop.is_set():
            lifecycle(ledger, "acme", f"live-{n}")
            lifecycle(ledger, "globex", f"other-{n}")  # another tenant: never in acme's feed
            written.append(("acme", n))
            n += 1
            time.sleep(0.01)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    got: list[Message] = []
    try:
        for _ in range(3):  # three connections, each cut part-way
            headers = dict(auditor)
            if got:
                headers["Last-Event-ID"] = str(got[-1].id)
            with stream(served, headers) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                for message in messages(response):
                    if message.data is not None:
                        got.append(message)
                    if len([m for m in got if m.id]) % 25 == 0 and message.data is not None:
                        break  # the client goes away mid-stream
        time.sleep(0.1)
    finally:
        stop.set()
        writer.join()
    head = _positions(settings, "")[-1]
    headers = {**auditor, "Last-Event-ID": str(got[-1].id)}
    with stream(served, headers) as response:
        for message in messages(response):
            if message.data is not None:
                got.append(message)
                if message.id == max(p for p in _positions(settings, "acme/") if p <= head):
                    break

    ids = [m.id for m in got]
    expected = _positions(settings, "acme/")
    assert ids == expected  # each event of the tenant once, in global order
    assert len(ids) > 75
    assert all(m.data and m.data["tenant"] == "acme" and m.data["position"] == m.id for m in got)
    assert {m.data["type"] for m in got if m.data} == {
        "created",
        "started",
        "progress",
        "succeeded",
    }


def test_a_quiet_stream_sends_heartbeats_then_the_new_events(
    served: Served, ledger: JobLedger, token_for: Callable[[str | None, str], Headers]
) -> None:
    auditor = token_for("acme", "auditor")
    lifecycle(ledger, "acme", "a")
    seen: list[Message] = []
    with stream(served, auditor, heartbeat=0.1) as response:
        for message in messages(response):
            seen.append(message)
            if len([m for m in seen if m.comment == "heartbeat"]) == 2 and len(seen) == 6:
                ledger.create_job("acme", NewJob(job_id="b", job_type="x"), CTX)
            if message.data is not None and message.data["job_id"] == "b":
                break

    events = [m for m in seen if m.data is not None]
    assert [m.id for m in events] == [1, 2, 3, 4, 5]
    assert seen[4].comment == "heartbeat" and seen[4].data is None and seen[4].id is None
    assert response.headers.get("x-ledger-position") is not None


def test_the_stream_ends_and_lets_go_of_its_listener_when_the_client_goes_away(
    served: Served,
    settings: Settings,
    ledger: JobLedger,
    token_for: Callable[[str | None, str], Headers],
) -> None:
    auditor = token_for("acme", "auditor")
    lifecycle(ledger, "acme", "a")
    streams = streams_of(served.app.state)
    with stream(served, auditor, heartbeat=0.05) as response:
        for message in messages(response):
            if message.comment == "heartbeat":
                assert streams.open == 1
                assert _listeners(settings) == 1
                break

    deadline = time.monotonic() + 10
    while streams.open:
        assert time.monotonic() < deadline, "the stream never ended"
        time.sleep(0.02)
    assert _listeners(settings) == 0


def test_a_bad_last_event_id_is_refused(
    served: Served, token_for: Callable[[str | None, str], Headers]
) -> None:
    headers = {**token_for("acme", "auditor"), "Last-Event-ID": "soon"}
    with stream(served, headers) as response:
        response.read()
    assert response.status_code == 400
    assert response.json()["field"] == "Last-Event-ID"


def _positions(settings: Settings, prefix: str) -> list[int]:
    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT notification_id FROM ledger_events WHERE starts_with(originator_id, %s) "
            "ORDER BY notification_id",
            (prefix,),
        ).fetchall()
    return [row["notification_id"] for row in rows]


def _listeners(settings: Settings) -> int:
    """Live streams' connections listening for appends."""
    with connect(settings) as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = %s",
            (LISTENER_NAME,),
        ).fetchone()
    assert row is not None
    return int(row["n"])
