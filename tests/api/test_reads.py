"""The read API, served from the projections: lists, pages, one job, progress, running, stats."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from ledger.settings import Settings
from tests.api.helpers import ADMIN, Client, Headers, assert_problem, create, event

TokenFor = Callable[[str | None, str], Headers]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def read(client: Client, url: str, headers: Headers, position: int) -> Any:
    """GET once the projections include `position`; asserts a 200."""
    separator = "&" if "?" in url else "?"
    response = await client.get(f"{url}{separator}min_position={position}", headers=headers)
    assert response.status_code == 200, response.text
    assert int(response.headers["x-ledger-position"]) >= position
    return response.json()


async def test_a_job_reads_back_with_every_field(
    client: Client, writer: Headers, reader: Headers
) -> None:
    await create(client, writer, id="job-1", name="Nightly", total_records=10, max_attempts=2)
    await event(client, writer, "job-1", "started")
    await event(
        client,
        writer,
        "job-1",
        "progress",
        progress=50,
        current_step="accounts",
        records_processed=5,
        records_created=2,
        records_updated=1,
        records_deleted=0,
    )
    done = await event(client, writer, "job-1", "succeeded", records_created=3)
    response = await client.get(
        f"/api/v1/jobs/job-1?min_position={done['position']}", headers=reader
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"4"'
    job = response.json()
    expected = {
        "id": "job-1",
        "tenant": "acme",
        "job_type": "full_sync",
        "name": "Nightly",
        "status": "completed",
        "progress": 100,
        "current_step": "accounts",
        "records_processed": 5,
        "total_records": 10,
        "records_created": 3,
        "records_updated": 1,
        "records_deleted": 0,
        "attempt": 1,
        "max_attempts": 2,
        "error_message": None,
        "error_details": None,
        "parameters": {},
        "labels": {},
        "version": 4,
        "position": done["position"],
    }
    assert {k: job[k] for k in expected} == expected
    for name in ("start_time", "end_time", "created_at", "updated_at"):
        assert TIMESTAMP.match(job[name]), (name, job[name])
    assert job["duration_ms"] is not None and job["duration_ms"] >= 0


async def test_the_write_answer_equals_the_read(client: Client, writer: Headers) -> None:
    created = await create(client, writer, id="job-1", labels={"a": "b"})
    assert await read(client, "/api/v1/jobs/job-1", writer, created["position"]) == created


async def test_unknown_and_deleted_jobs(client: Client, writer: Headers) -> None:
    assert_problem(await client.get("/api/v1/jobs/nope", headers=writer), 404, "job-not-found")
    await create(client, writer, id="job-1")
    gone = await event(client, writer, "job-1", "deleted")
    for url in ("/api/v1/jobs/job-1", "/api/v1/jobs/job-1/progress"):
        response = await client.get(f"{url}?min_position={gone['position']}", headers=writer)
        assert_problem(response, 410, "job-deleted", job_id="job-1")


async def test_progress_elapsed_follows_the_status(client: Client, writer: Headers) -> None:
    created = await create(client, writer, id="job-1", total_records=1000)
    pending = await read(client, "/api/v1/jobs/job-1/progress", writer, created["position"])
    assert pending == {
        "id": "job-1",
        "status": "pending",
        "progress": 0,
        "current_step": None,
        "records_processed": 0,
        "total_records": 1000,
        "elapsed_ms": None,
    }
    await event(client, writer, "job-1", "started")
    moved = await event(
        client,
        writer,
        "job-1",
        "progress",
        progress=65,
        current_step="Processing accounts",
        records_processed=650,
    )
    running = await read(client, "/api/v1/jobs/job-1/progress", writer, moved["position"])
    assert (running["status"], running["progress"], running["records_processed"]) == (
        "running",
        65,
        650,
    )
    assert running["current_step"] == "Processing accounts"
    assert running["elapsed_ms"] >= 0
    failed = await event(client, writer, "job-1", "failed", error_message="boom")
    ended = await read(client, "/api/v1/jobs/job-1/progress", writer, failed["position"])
    job = await read(client, "/api/v1/jobs/job-1", writer, failed["position"])
    assert ended["elapsed_ms"] == job["duration_ms"] is not None


async def test_running_lists_only_the_tenants_running_jobs(
    client: Client, writer: Headers, token_for: TokenFor
) -> None:
    globex = token_for("globex", "writer")
    for job_id in ("a", "b", "c"):
        await create(client, writer, id=job_id)
    await create(client, globex, id="theirs")
    await event(client, globex, "theirs", "started")
    await event(client, writer, "a", "started")
    last = await event(client, writer, "b", "started")
    body = await read(client, "/api/v1/jobs/running", writer, last["position"])
    assert [j["id"] for j in body["jobs"]] == ["b", "a"]
    first = body["jobs"][0]
    assert set(first) == {"id", "job_type", "status", "progress", "start_time"}
    assert first["status"] == "running" and TIMESTAMP.match(first["start_time"])
    everyone = await read(client, "/api/v1/jobs/running", ADMIN, last["position"])
    assert {j["id"] for j in everyone["jobs"]} == {"a", "b", "theirs"}


async def test_the_list_is_newest_first_and_filters(client: Client, writer: Headers) -> None:
    for n, job_type in enumerate(["full_sync", "owner_sync", "full_sync", "enrichment"]):
        await create(client, writer, id=f"job-{n}", job_type=job_type)
    await event(client, writer, "job-0", "started")
    last = await event(client, writer, "job-3", "started")
    listed = await read(client, "/api/v1/jobs", writer, last["position"])
    assert [j["id"] for j in listed["jobs"]] == ["job-3", "job-2", "job-1", "job-0"]
    assert listed["pageInfo"] == {
        "hasNextPage": False,
        "endCursor": listed["pageInfo"]["endCursor"],
    }
    full = await read(client, "/api/v1/jobs?job_type=full_sync", writer, last["position"])
    assert [j["id"] for j in full["jobs"]] == ["job-2", "job-0"]
    two = await read(
        client,
        "/api/v1/jobs?job_type=full_sync,enrichment&status=pending",
        writer,
        last["position"],
    )
    assert [j["id"] for j in two["jobs"]] == ["job-2"]
    repeated = await read(
        client,
        "/api/v1/jobs?status=running&status=pending&job_type=owner_sync",
        writer,
        last["position"],
    )
    assert [j["id"] for j in repeated["jobs"]] == ["job-1"]
    started = await read(
        client, "/api/v1/jobs?start_date=2000-01-01T00:00:00Z", writer, last["position"]
    )
    assert [j["id"] for j in started["jobs"]] == ["job-3", "job-0"]
    before = await read(
        client, "/api/v1/jobs?end_date=2000-01-01T00:00:00Z", writer, last["position"]
    )
    assert before["jobs"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("first=0", "first"),
        ("first=201", "first"),
        ("first=ten", "first"),
        ("status=exploded", "status"),
        ("job_type=has%20space", "job_type"),
        ("start_date=yesterday", "start_date"),
        ("after=not-a-cursor", "after"),
        ("min_position=-1", "min_position"),
        ("tenant=bad%20tenant", "tenant"),
    ],
)
async def test_a_bad_list_parameter_is_400_naming_it(
    client: Client, writer: Headers, query: str, field: str
) -> None:
    response = await client.get(f"/api/v1/jobs?{query}", headers=writer)
    assert_problem(response, 400, "invalid-field", field=field)


async def test_pages_cover_every_job_once_while_jobs_are_added(
    client: Client, writer: Headers
) -> None:
    created = [await create(client, writer, id=f"old-{n:02d}") for n in range(25)]
    first_batch = [job["id"] for job in created]
    position = created[-1]["position"]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        url = "/api/v1/jobs?first=7" + (f"&after={cursor}" if cursor else "")
        page = await read(client, url, writer, position)
        seen += [j["id"] for j in page["jobs"]]
        pages += 1
        # Jobs created between pages are newer than every cursor: they never shift a page.
        position = (await create(client, writer, id=f"new-{pages:02d}"))["position"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        cursor = page["pageInfo"]["endCursor"]
    assert pages == 4
    assert sorted(seen) == sorted(first_batch)
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen, reverse=True)


async def test_lists_never_show_other_tenants(
    client: Client, writer: Headers, token_for: TokenFor
) -> None:
    globex = token_for("globex", "reader")
    globex_writer = token_for("globex", "writer")
    await create(client, writer, id="shared")
    last = await create(client, globex_writer, id="shared", job_type="theirs")
    mine = await read(client, "/api/v1/jobs", writer, last["position"])
    theirs = await read(client, "/api/v1/jobs", globex, last["position"])
    assert [(j["tenant"], j["job_type"]) for j in mine["jobs"]] == [("acme", "full_sync")]
    assert [(j["tenant"], j["job_type"]) for j in theirs["jobs"]] == [("globex", "theirs")]
    their_view = await read(client, "/api/v1/jobs/shared", globex, last["position"])
    assert their_view["job_type"] == "theirs"
    assert_problem(await client.get("/api/v1/jobs?tenant=globex", headers=writer), 403, "forbidden")
    other = await client.get("/api/v1/jobs/shared?tenant=globex", headers=writer)
    assert_problem(other, 404, "job-not-found")
    every = await read(client, "/api/v1/jobs", ADMIN, last["position"])
    assert sorted(j["tenant"] for j in every["jobs"]) == ["acme", "globex"]
    only = await read(client, "/api/v1/jobs?tenant=globex", ADMIN, last["position"])
    assert [j["tenant"] for j in only["jobs"]] == ["globex"]
    assert_problem(
        await client.get("/api/v1/jobs/shared", headers=ADMIN), 400, "invalid-field", field="tenant"
    )
    assert (await read(client, "/api/v1/jobs/shared?tenant=acme", ADMIN, 0))["tenant"] == "acme"


@pytest.mark.parametrize("role", ["reader", "auditor", "writer", "admin"])
async def test_every_role_of_the_tenant_reads(
    client: Client, token_for: TokenFor, writer: Headers, role: str
) -> None:
    created = await create(client, writer, id="job-1")
    headers = token_for("acme", role)
    for url in (
        "/api/v1/jobs",
        "/api/v1/jobs/job-1",
        "/api/v1/jobs/job-1/progress",
        "/api/v1/jobs/running",
        "/api/v1/stats",
    ):
        await read(client, url, headers, created["position"])


async def test_stats_group_and_count(client: Client, writer: Headers, token_for: TokenFor) -> None:
    globex = token_for("globex", "writer")
    for n in range(3):
        await create(client, writer, id=f"s-{n}", job_type="full_sync")
    await create(client, writer, id="o-1", job_type="owner_sync")
    await create(client, globex, id="g-1", job_type="full_sync")
    await event(client, writer, "s-0", "started")
    last = await event(client, writer, "s-0", "succeeded")
    stats = await read(client, "/api/v1/stats", writer, last["position"])
    assert stats["total"] == 4
    groups = {(g["status"], g["job_type"]): g for g in stats["groups"]}
    assert {k: g["count"] for k, g in groups.items()} == {
        ("completed", "full_sync"): 1,
        ("pending", "full_sync"): 2,
        ("pending", "owner_sync"): 1,
    }
    finished = groups[("completed", "full_sync")]["duration_ms"]
    assert finished["min"] is not None and finished["min"] <= finished["max"]
    assert groups[("pending", "owner_sync")]["duration_ms"]["avg"] is None
    by_status = await read(client, "/api/v1/stats?group_by=status", writer, last["position"])
    assert {g["status"]: g["count"] for g in by_status["groups"]} == {"completed": 1, "pending": 3}
    assert all("job_type" not in g for g in by_status["groups"])
    by_day = await read(client, "/api/v1/stats?group_by=day", writer, last["position"])
    assert sum(g["count"] for g in by_day["groups"]) == 4 and "day" in by_day["groups"][0]
    everyone = await read(client, "/api/v1/stats?group_by=status", ADMIN, last["position"])
    assert everyone["total"] == 5
    none = await read(
        client,
        "/api/v1/stats?start_date=2000-01-01&end_date=2000-01-02",
        writer,
        last["position"],
    )
    assert none == {"groups": [], "total": 0}
    bad = await client.get("/api/v1/stats?group_by=colour", headers=writer)
    assert_problem(bad, 400, "invalid-field", field="group_by")


async def test_min_position_times_out_with_503(settings: Settings, writer: Headers) -> None:
    stalled = dataclasses.replace(settings, run_projections=False, min_position_timeout=0.3)
    async with AsyncTestClient(create_app(stalled)) as client:
        created = await create(client, writer, id="job-1")
        response = await client.get(
            f"/api/v1/jobs/job-1?min_position={created['position']}", headers=writer
        )
        assert_problem(response, 503, "position-not-reached", min_position=created["position"])
        assert response.headers["retry-after"] == "1"
        ready = (await client.get("/ready")).json()
        assert ready["projections"] == "external" and ready["lag"] >= 1


async def test_health_ready_and_openapi_need_no_token(client: Client, writer: Headers) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    created = await create(client, writer)
    await read(client, "/api/v1/jobs", writer, created["position"])
    ready = await client.get("/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready" and body["database"] == "ok"
    assert body["head"] >= created["position"] and body["projections"] == "running"
    schema = await client.get("/schema/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in (
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/progress",
        "/api/v1/jobs/running",
        "/api/v1/jobs/{job_id}/events",
        "/api/v1/events/batch",
        "/api/v1/stats",
        "/health",
        "/ready",
    ):
        assert path in paths, path
    create_op = paths["/api/v1/jobs"]["post"]
    assert "server makes one" in create_op["description"]


async def test_unknown_routes_and_methods_are_problems(client: Client, writer: Headers) -> None:
    missing = await client.get("/api/v1/nothing-here", headers=writer)
    assert_problem(missing, 404, "not-found")
    assert "x-request-id" in missing.headers
    wrong = await client.put("/api/v1/jobs", headers=writer)
    assert_problem(wrong, 405, "method-not-allowed")
