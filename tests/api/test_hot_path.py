"""The hot path of plain job reads and events answers as the routed handlers do, or leaves the
request to them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from api import hot_path
from api.app import create_app
from ledger.settings import Settings
from projections.queries import RECENT
from tests.api.helpers import ADMIN, Client, Headers, create, event

Answer = tuple[int, dict[str, str], bytes]


@pytest.fixture
async def routed(settings: Settings) -> AsyncIterator[Client]:
    """The same service, every plain job read left to its routed handler."""
    app = create_app(replace(settings, run_projections=False), hot_path=False)
    async with AsyncTestClient(app) as test_client:
        yield test_client


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether the hot path answered each request it was offered, in order."""
    answers: list[bool] = []
    for name in ("answer_job", "answer_list", "record_event", "answer_stats", "answer_running"):
        hot = getattr(hot_path, name)

        async def spy(*args: Any, hot: Any = hot) -> Any:
            to_route = await hot(*args)
            answers.append(to_route is None)
            return to_route

        monkeypatch.setattr(hot_path, name, spy)
    return answers


async def answer(client: Client, url: str, headers: Headers) -> Answer:
    response = await client.get(url, headers=headers)
    kept = {k: v for k, v in response.headers.items() if k != "x-request-id"}
    assert response.headers["x-request-id"].startswith("req-")
    return response.status_code, kept, response.content


async def settled(clients: list[Client], headers: Headers, position: int) -> None:
    """Both services' read models include `position`, and neither holds an older one."""
    for client in clients:
        url = f"/api/v1/jobs?min_position={position}"
        assert (await client.get(url, headers=headers)).status_code == 200
    await asyncio.sleep(RECENT * 1.5)


async def test_a_plain_read_is_answered_as_the_route_answers_it(
    client: Client, routed: Client, writer: Headers, reader: Headers, taken: list[bool]
) -> None:
    await create(client, writer, id="hot-1", job_type="full_sync", labels={"team": "data"})
    await event(client, writer, "hot-1", "started")
    await event(
        client, writer, "hot-1", "progress", progress=40, counters={"pages": 3}, current_step="x"
    )
    await create(client, writer, id="hot-2", job_type="enrichment")
    await event(client, writer, "hot-2", "started")
    done = await event(client, writer, "hot-2", "failed", error_message="boom")
    await settled([client, routed], writer, done["position"])
    for job_id in ("hot-1", "hot-2"):
        for headers in (writer, reader):
            taken.clear()
            hot = await answer(client, f"/api/v1/jobs/{job_id}", headers)
            assert taken == [True]
            assert hot[0] == 200
            assert hot == await answer(routed, f"/api/v1/jobs/{job_id}", headers)


@pytest.mark.parametrize(
    "url, who",
    [
        ("/api/v1/jobs/nobody", "reader"),  # not found
        ("/api/v1/jobs/gone-1", "reader"),  # deleted
        ("/api/v1/jobs/hot-3", "other"),  # another tenant's job
        ("/api/v1/jobs/hot-3", "bad token"),
        ("/api/v1/jobs/hot-3", "no token"),
        ("/api/v1/jobs/hot-3", "admin"),  # a global token must name the tenant
        ("/api/v1/jobs/hot-3?tenant=acme", "admin"),
        ("/api/v1/jobs/hot-3?tenant=acme", "reader"),
        ("/api/v1/jobs/hot-3?version=1", "reader"),
        ("/api/v1/jobs/hot%203", "reader"),  # no job can have this id
    ],
)
async def test_anything_else_is_left_to_the_route(
    client: Client,
    routed: Client,
    writer: Headers,
    reader: Headers,
    token_for: Callable[[str | None, str], Headers],
    taken: list[bool],
    url: str,
    who: str,
) -> None:
    await create(client, writer, id="hot-3")
    await create(client, writer, id="gone-1")
    gone = await event(client, writer, "gone-1", "deleted")
    await settled([client, routed], writer, gone["position"])
    headers = {
        "reader": reader,
        "other": token_for("globex", "reader"),
        "bad token": {"Authorization": "Bearer lt_nope.nope"},
        "no token": {},
        "admin": ADMIN,
    }[who]
    taken.clear()
    hot = await answer(client, url, headers)
    assert True not in taken
    assert hot == await answer(routed, url, headers)
    # The routed answer was not a plain 200: each case is one the hot path must decline.
    assert hot[0] != 200 or "?" in url


def _comparable(answer: Answer) -> Answer:
    """An event's answer without what differs between two logs: its position."""
    status, headers, body = answer
    kept = {k: v for k, v in headers.items() if k != "x-ledger-position"}
    if status == 201:
        decoded = json.loads(body)
        assert headers["x-ledger-position"] == str(decoded.pop("position"))
        body = json.dumps(decoded).encode()
    return status, kept, body


async def post_event(client: Client, job_id: str, body: bytes, headers: Headers) -> Answer:
    response = await client.post(
        f"/api/v1/jobs/{job_id}/events",
        content=body,
        headers={"Content-Type": "application/json", **headers},
    )
    kept = {k: v for k, v in response.headers.items() if k != "x-request-id"}
    return response.status_code, kept, response.content


PROGRESS = b'{"type": "progress", "progress": 30, "records_processed": 5, "counters": {"a": 1}}'


@pytest.mark.parametrize(
    "history, body, extra, hot",
    [
        (["started"], PROGRESS, {}, True),
        ([], b'{"type": "started"}', {}, True),
        (["started"], b'{"type": "succeeded", "records_created": 4}', {}, True),
        (
            ["started"],
            b'{"type": "failed", "error_message": "x", "error_details": {"a": [1]}}',
            {},
            True,
        ),
        ([], PROGRESS, {}, False),  # not running: 409
        (["started"], b'{"type": "progress", "progress": 101}', {}, False),
        (["started"], b'{"type": "progress", "nope": 1}', {}, False),
        (["started"], b'{"type": "progress", ', {}, False),
        (["started"], b'{"type": "progress", "current_step": "a\\u0000b"}', {}, False),
        (["started"], b'{"type": "progress", "current_step": "\xff"}', {}, False),
        (["started"], PROGRESS, {"Idempotency-Key": "k-1"}, False),
        (["started"], PROGRESS, {"If-Match": '"2"'}, False),
        (["started"], PROGRESS, {"If-Match": '"7"'}, False),
        (
            ["started"],
            b'{"type": "progress", "current_step": "' + b"x" * 2_000_000 + b'"}',
            {},
            False,
        ),
    ],
)
async def test_an_event_is_answered_as_the_route_answers_it(
    client: Client,
    routed: Client,
    token_for: Callable[[str | None, str], Headers],
    taken: list[bool],
    history: list[str],
    body: bytes,
    extra: Headers,
    hot: bool,
) -> None:
    """The same job in two tenants, one written through each app: the same answers."""
    acme, globex = token_for("acme", "writer"), token_for("globex", "writer")
    for app, headers in ((client, acme), (routed, globex)):
        await create(app, headers, id="twin", job_type="full_sync")
        for type_ in history:
            await event(app, headers, "twin", type_)
    taken.clear()
    answered = await post_event(client, "twin", body, {**acme, **extra})
    assert taken == [hot]
    assert _comparable(answered) == _comparable(
        await post_event(routed, "twin", body, {**globex, **extra})
    )
    assert (answered[0] == 201) is hot or "Idempotency-Key" in extra or "If-Match" in extra


@pytest.mark.parametrize("who", ["reader", "admin", "unknown job", "query"])
async def test_other_writers_and_jobs_are_left_to_the_route(
    client: Client,
    routed: Client,
    writer: Headers,
    reader: Headers,
    taken: list[bool],
    who: str,
) -> None:
    await create(client, writer, id="w-1")
    await event(client, writer, "w-1", "started")
    headers = {"reader": reader, "admin": ADMIN}.get(who, writer)
    job_id = "w-2" if who == "unknown job" else "w-1"
    url = f"/api/v1/jobs/{job_id}/events" + ("?tenant=acme" if who == "query" else "")
    taken.clear()
    response = await client.post(url, json={"type": "progress", "progress": 1}, headers=headers)
    assert True not in taken
    reference = await routed.post(url, json={"type": "progress", "progress": 2}, headers=headers)
    assert response.status_code == reference.status_code
    assert response.status_code != 201 or who == "query"


async def test_a_job_last_written_by_another_process_is_left_to_the_route(
    client: Client, routed: Client, writer: Headers, taken: list[bool]
) -> None:
    await create(client, writer, id="moved")
    await event(client, writer, "moved", "started")
    await event(routed, writer, "moved", "progress", progress=10)  # the hot app is behind
    taken.clear()
    accepted = await event(client, writer, "moved", "progress", progress=20)
    assert taken == [False]
    assert accepted["version"] == 4
    taken.clear()
    assert (await event(client, writer, "moved", "progress", progress=30))["version"] == 5
    assert taken == [True]


@pytest.mark.parametrize(
    "query, hot",
    [
        ("", True),
        ("?group_by=status", True),
        ("?group_by=day,tenant", True),
        ("?group_by=job_type,status,day,status", True),
        ("?group_by=,", True),
        ("?group_by=", False),
        ("?group_by=bogus", False),
        ("?group_by=STATUS", False),
        ("?group_by=status%2Cday", False),
        ("?group_by=status&tenant=acme", False),
        ("?start_date=2020-01-01T00:00:00Z", False),
    ],
)
async def test_stats_are_answered_as_the_route_answers_them(
    client: Client, routed: Client, writer: Headers, taken: list[bool], query: str, hot: bool
) -> None:
    await create(client, writer, id="s-1", job_type="full_sync")
    await create(client, writer, id="s-2", job_type="enrichment")
    await event(client, writer, "s-2", "started")
    done = await event(client, writer, "s-2", "succeeded", records_created=3)
    await settled([client, routed], writer, done["position"])
    taken.clear()
    answered = await answer(client, f"/api/v1/stats{query}", writer)
    assert (True in taken) is hot
    assert answered == await answer(routed, f"/api/v1/stats{query}", writer)
    assert answered[0] == 200 or not hot


@pytest.mark.parametrize("query, hot", [("", True), ("?min_position=1", False)])
async def test_the_running_set_is_answered_as_the_route_answers_it(
    client: Client,
    routed: Client,
    writer: Headers,
    reader: Headers,
    taken: list[bool],
    query: str,
    hot: bool,
) -> None:
    await create(client, writer, id="running")  # the running set's route, not this job's
    for n in range(3):
        await create(client, writer, id=f"r-{n}", job_type="enrichment")
        done = await event(client, writer, f"r-{n}", "started")
    done = await event(client, writer, "r-1", "progress", progress=30)
    await settled([client, routed], writer, done["position"])
    for headers in (writer, reader):
        taken.clear()
        answered = await answer(client, f"/api/v1/jobs/running{query}", headers)
        assert taken == ([True] if hot else [])  # a query string is the route's
        assert answered[0] == 200
        assert [job["id"] for job in json.loads(answered[2])["jobs"]] == ["r-2", "r-1", "r-0"]
        assert answered == await answer(routed, f"/api/v1/jobs/running{query}", headers)
    taken.clear()
    assert (await answer(client, "/api/v1/jobs/running", ADMIN))[0] == 200
    assert taken == [False]  # a global token's set is every tenant's: the route's


async def test_a_global_token_s_stats_are_left_to_the_route(
    client: Client, routed: Client, taken: list[bool]
) -> None:
    taken.clear()
    answered = await answer(client, "/api/v1/stats", ADMIN)
    assert taken == [False]
    assert answered == await answer(routed, "/api/v1/stats", ADMIN)


async def _listed_jobs(client: Client, writer: Headers) -> int:
    """Five jobs of two types in four statuses; the position of the last event."""
    await create(client, writer, id="l-1", job_type="full_sync")
    await create(client, writer, id="l-2", job_type="enrichment", labels={"team": "data"})
    await event(client, writer, "l-2", "started")
    await create(client, writer, id="l-3", job_type="enrichment")
    await event(client, writer, "l-3", "started")
    await event(client, writer, "l-3", "progress", progress=30)
    await create(client, writer, id="l-4", job_type="full_sync")
    await event(client, writer, "l-4", "started")
    await event(client, writer, "l-4", "failed", error_message="boom")
    await create(client, writer, id="l-5", job_type="enrichment")
    await event(client, writer, "l-5", "started")
    done = await event(client, writer, "l-5", "succeeded", records_created=2)
    return int(done["position"])


@pytest.mark.parametrize(
    "query, hot",
    [
        ("", True),
        ("?first=2", True),
        ("?first=200", True),
        ("?status=running", True),
        ("?status=running,pending", True),
        ("?status=running&status=failed&job_type=enrichment", True),
        ("?job_type=full_sync,enrichment&first=3", True),
        ("?start_date=2000-01-01T00:00:00Z", True),
        ("?start_date=2000-01-01&end_date=2100-01-01T00%3A00%3A00%2B02%3A00", True),
        ("?end_date=2000-01-01", True),
        ("?status=bogus", False),  # 400
        ("?job_type=no%20spaces", False),  # 400
        ("?first=0", False),  # 400
        ("?first=201", False),  # 400
        ("?first=abc", False),  # 400
        ("?first=007", False),
        ("?first=2&first=3", False),
        ("?start_date=yesterday", False),  # 400
        ("?start_date=" + "9" * 65, False),  # 400
        ("?after=not-a-cursor", False),  # 400
        ("?status=", False),
        ("?tenant=acme", False),
        ("?as_of=2000-01-01", False),
        ("?min_position=1", False),
        ("?sort=name", False),
    ],
)
async def test_a_list_is_answered_as_the_route_answers_it(
    client: Client, routed: Client, writer: Headers, taken: list[bool], query: str, hot: bool
) -> None:
    position = await _listed_jobs(client, writer)
    await settled([client, routed], writer, position)
    taken.clear()
    answered = await answer(client, f"/api/v1/jobs{query}", writer)
    assert taken == [hot]
    assert answered == await answer(routed, f"/api/v1/jobs{query}", writer)
    assert answered[0] == 200 or not hot
    if hot and not query.startswith("?end_date=2000"):
        assert json.loads(answered[2])["jobs"], "a list the filters leave empty shows little"


async def test_every_page_of_a_list_is_answered_as_the_route_answers_it(
    client: Client, routed: Client, writer: Headers, reader: Headers, taken: list[bool]
) -> None:
    position = await _listed_jobs(client, writer)
    await settled([client, routed], writer, position)
    url = "/api/v1/jobs?first=2"
    seen: list[str] = []
    while True:
        taken.clear()
        page = await answer(client, url, reader)
        assert taken == [True]
        assert page == await answer(routed, url, reader)
        listed = json.loads(page[2])
        seen += [job["id"] for job in listed["jobs"]]
        if not listed["pageInfo"]["hasNextPage"]:
            break
        url = f"/api/v1/jobs?first=2&after={listed['pageInfo']['endCursor']}"
    assert seen == ["l-5", "l-4", "l-3", "l-2", "l-1"]


@pytest.mark.parametrize("who", ["admin", "bad token", "no token"])
async def test_other_callers_lists_are_left_to_the_route(
    client: Client, routed: Client, writer: Headers, taken: list[bool], who: str
) -> None:
    headers = {"admin": ADMIN, "bad token": {"Authorization": "Bearer lt_x.y"}, "no token": {}}
    taken.clear()
    answered = await answer(client, "/api/v1/jobs", headers[who])
    assert taken == [False]
    assert answered == await answer(routed, "/api/v1/jobs", headers[who])


@pytest.mark.parametrize(
    "url, headers",
    [
        ("/api/v1/jobs/r-1/", {}),
        ("/api/v1/jobs/", {}),
        ("/api/v1/stats/", {}),
        ("/api/v1/jobs/r-1", {"Host": "bad host!"}),
    ],
)
async def test_a_path_is_routed_as_litestar_routes_it(
    client: Client,
    routed: Client,
    writer: Headers,
    taken: list[bool],
    url: str,
    headers: Headers,
) -> None:
    await create(client, writer, id="running")
    await create(client, writer, id="r-1")
    done = await event(client, writer, "r-1", "started")
    await settled([client, routed], writer, done["position"])
    taken.clear()
    answered = await answer(client, url, {**writer, **headers})
    assert taken == []
    assert answered == await answer(routed, url, {**writer, **headers})
