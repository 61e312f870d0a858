"""The hot path of plain job reads answers as the routed handler does, or leaves it to it."""

from __future__ import annotations

import asyncio
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
    answer_job = hot_path.answer_job

    async def spy(*args: Any) -> bool:
        answers.append(await answer_job(*args))
        return answers[-1]

    monkeypatch.setattr(hot_path, "answer_job", spy)
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
