"""A job's events and the event feed through the API test client, on real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.api.helpers import ADMIN, Client, Headers, assert_problem, create, event

TokenFor = Callable[[str | None, str], Headers]


async def lifecycle(client: Client, writer: Headers, job_id: str) -> list[dict[str, Any]]:
    """Create, start, progress, fail and delete a job; the write answers."""
    answers = [await create(client, writer, id=job_id, job_type="export", labels={"k": "v"})]
    answers.append(await event(client, writer, job_id, "started"))
    answers.append(await event(client, writer, job_id, "progress", progress=30, current_step="s"))
    answers.append(await event(client, writer, job_id, "failed", error_message="disk full"))
    answers.append(await event(client, writer, job_id, "deleted"))
    return answers


async def test_a_jobs_events_come_in_order_with_when_who_and_what(
    client: Client, writer: Headers, auditor: Headers
) -> None:
    answers = await lifecycle(client, writer, "a")

    response = await client.get("/api/v1/jobs/a/events", headers=auditor)

    assert response.status_code == 200, response.text
    body = response.json()
    events = body["events"]
    assert body["job_id"] == "a"
    assert [e["type"] for e in events] == ["created", "started", "progress", "failed", "deleted"]
    assert [e["version"] for e in events] == [1, 2, 3, 4, 5]
    assert [e["position"] for e in events] == [a["position"] for a in answers]
    assert events[0]["data"]["job_type"] == "export"
    assert events[0]["data"]["labels"] == {"k": "v"}
    assert events[1]["data"] == {"attempt": 1}
    assert events[2]["data"]["progress"] == 30 and events[2]["data"]["current_step"] == "s"
    assert events[3]["data"]["error_message"] == "disk full"
    actor = events[0]["actor"]
    assert actor.startswith("tok_") and all(e["actor"] == actor for e in events)
    assert len({e["request_id"] for e in events}) == 5
    times = [e["occurred_at"] for e in events]
    assert times == sorted(times) and all(t.endswith("Z") for t in times)
    assert response.headers["x-ledger-position"].isdigit()


async def test_a_deleted_jobs_history_is_kept(
    client: Client, writer: Headers, auditor: Headers
) -> None:
    answers = await lifecycle(client, writer, "a")

    gone = await client.get(
        f"/api/v1/jobs/a?min_position={answers[-1]['position']}", headers=auditor
    )
    history = await client.get("/api/v1/jobs/a/events", headers=auditor)

    assert_problem(gone, 410, "job-deleted")
    assert history.status_code == 200
    assert history.json()["events"][-1]["type"] == "deleted"


@pytest.mark.parametrize("role", ["reader", "writer"])
async def test_history_is_for_auditors_and_admins_only(
    client: Client, writer: Headers, token_for: TokenFor, role: str
) -> None:
    await create(client, writer, id="a")
    headers = token_for("acme", role)

    for path in ("/api/v1/jobs/a/events", "/api/v1/events"):
        assert_problem(await client.get(path, headers=headers), 403, "forbidden")


async def test_admins_read_history_naming_the_tenant(
    client: Client, writer: Headers, token_for: TokenFor
) -> None:
    await create(client, writer, id="a")
    admin = token_for("acme", "admin")

    own = await client.get("/api/v1/jobs/a/events", headers=admin)
    unnamed = await client.get("/api/v1/jobs/a/events", headers=ADMIN)
    named = await client.get("/api/v1/jobs/a/events?tenant=acme", headers=ADMIN)

    assert own.status_code == 200 and named.status_code == 200
    assert_problem(unnamed, 400, "invalid-field", field="tenant")
    assert named.json() == own.json()


async def test_another_tenants_job_and_an_unknown_one_are_not_found(
    client: Client, writer: Headers, token_for: TokenFor
) -> None:
    await create(client, writer, id="a")
    other = token_for("globex", "auditor")

    assert_problem(await client.get("/api/v1/jobs/a/events", headers=other), 404, "job-not-found")
    assert_problem(
        await client.get("/api/v1/jobs/nope/events", headers=token_for("acme", "auditor")),
        404,
        "job-not-found",
    )


async def test_the_feed_pages_through_the_tenants_events_in_global_order(
    client: Client, writer: Headers, auditor: Headers, token_for: TokenFor
) -> None:
    other = token_for("globex", "writer")
    for n in range(4):
        await create(client, writer, id=f"a{n}")
        await create(client, other, id=f"g{n}")
        await event(client, writer, f"a{n}", "started")

    pages, after = [], 0
    while True:
        response = await client.get(f"/api/v1/events?after={after}&limit=3", headers=auditor)
        assert response.status_code == 200
        body = response.json()
        if not body["events"]:
            assert body["next"] == after
            break
        pages.append(body["events"])
        after = body["next"]
        assert after == body["events"][-1]["position"]

    events = [e for page in pages for e in page]
    assert [len(p) for p in pages] == [3, 3, 2]
    assert {e["tenant"] for e in events} == {"acme"}
    assert [(e["job_id"], e["type"]) for e in events] == [
        (f"a{n}", kind) for n in range(4) for kind in ("created", "started")
    ]
    positions = [e["position"] for e in events]
    assert positions == sorted(positions)


async def test_a_global_admin_reads_every_tenants_feed_or_one(
    client: Client, writer: Headers, token_for: TokenFor
) -> None:
    await create(client, writer, id="a")
    await create(client, token_for("globex", "writer"), id="g")

    every = (await client.get("/api/v1/events", headers=ADMIN)).json()["events"]
    one = (await client.get("/api/v1/events?tenant=globex", headers=ADMIN)).json()["events"]

    assert [e["tenant"] for e in every] == ["acme", "globex"]
    assert [e["job_id"] for e in one] == ["g"]


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "after=-1", "limit=x"])
async def test_feed_bounds_are_checked(client: Client, auditor: Headers, query: str) -> None:
    response = await client.get(f"/api/v1/events?{query}", headers=auditor)

    assert_problem(response, 400, "invalid-field", field=query.split("=")[0])


async def test_a_tenant_named_like_a_pattern_sees_only_its_own_events(
    client: Client, token_for: TokenFor
) -> None:
    # `_` would be a LIKE wildcard: the feed must not match tenant "a_c" to "abc".
    await create(client, token_for("abc", "writer"), id="x")
    await create(client, token_for("a_c", "writer"), id="y")

    response = await client.get("/api/v1/events", headers=token_for("a_c", "auditor"))

    assert [e["job_id"] for e in response.json()["events"]] == ["y"]
