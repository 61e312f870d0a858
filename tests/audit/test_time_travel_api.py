"""Time travel through the API: a job at a version or a moment, and lists and statistics as
they stood, each equal to what the live reads answered at that moment."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api.helpers import ADMIN, Client, Headers, assert_problem, create, event

TokenFor = Callable[[str | None, str], Headers]
LIST_QUERIES: list[dict[str, Any]] = [
    {"first": 200},
    {"status": "running"},
    {"status": "pending,failed"},
    {"job_type": "export", "status": "completed"},
    {"start_date": "2000-01-01"},
    {"first": 2},
]
STATS_QUERIES: list[dict[str, Any]] = [
    {},
    {"group_by": "status"},
    {"group_by": "job_type,day"},
    {"group_by": ""},
]


class Recorder:
    """Drives writes and, after each, keeps the live answers and the moment they stand for."""

    def __init__(self, client: Client, writer: Headers, reader: Headers) -> None:
        self.client, self.writer, self.reader = client, writer, reader
        self.moments: list[tuple[datetime, dict[str, Any]]] = []

    async def write(self, job_id: str, kind: str, **body: Any) -> None:
        if kind == "create":
            answer = await create(self.client, self.writer, id=job_id, **body)
        else:
            answer = await event(self.client, self.writer, job_id, kind, **body)
        await self.snapshot(answer["position"])

    async def snapshot(self, position: int) -> None:
        await asyncio.sleep(0.002)  # the moment lies strictly after the event's time
        moment = datetime.now(UTC)
        live: dict[str, Any] = {}
        for n, params in enumerate(LIST_QUERIES):
            live[f"list{n}"] = await self.get("/api/v1/jobs", position, params)
        for n, params in enumerate(STATS_QUERIES):
            live[f"stats{n}"] = await self.get("/api/v1/stats", position, params)
        for job in live["list0"]["jobs"]:
            live[f"job:{job['id']}"] = job
        self.moments.append((moment, live))
        await asyncio.sleep(0.002)

    async def get(self, path: str, position: int, params: dict[str, Any]) -> Any:
        response = await self.client.get(
            path, params={**params, "min_position": position}, headers=self.reader
        )
        assert response.status_code == 200, response.text
        return response.json()


async def test_lists_stats_and_jobs_as_of_each_moment_equal_the_live_answers_then(
    client: Client, writer: Headers, auditor: Headers, token_for: TokenFor
) -> None:
    rec = Recorder(client, writer, token_for("acme", "reader"))
    await rec.write("a", "create", job_type="export", max_attempts=2)
    await rec.write("b", "create", job_type="import")
    await rec.write("a", "started")
    await rec.write("a", "progress", progress=40, current_step="read")
    await rec.write("b", "started")
    await rec.write("c", "create", job_type="export")
    await rec.write("a", "failed", error_message="boom")
    await rec.write("b", "succeeded", records_created=3)
    await rec.write("a", "started")
    await rec.write("c", "cancelled", reason="dup")
    await rec.write("a", "succeeded")
    await rec.write("b", "deleted")
    await create(client, writer, id="later")  # after every moment: never in the answers

    for moment, live in rec.moments:
        as_of = moment.isoformat()
        for n, params in enumerate(LIST_QUERIES):
            got = await _get(client, "/api/v1/jobs", auditor, {**params, "as_of": as_of})
            assert got == live[f"list{n}"], (as_of, params)
        for n, params in enumerate(STATS_QUERIES):
            got = await _get(client, "/api/v1/stats", auditor, {**params, "as_of": as_of})
            assert got == live[f"stats{n}"], (as_of, params)
        for key, job in live.items():
            if key.startswith("job:"):
                got = await _get(client, f"/api/v1/jobs/{job['id']}", auditor, {"as_of": as_of})
                assert got == job, (as_of, key)


async def test_the_job_at_every_version_equals_the_job_after_that_many_events(
    client: Client, writer: Headers, auditor: Headers
) -> None:
    created = await create(client, writer, id="a", max_attempts=2)
    kinds = [
        ("started", {}),
        ("progress", {"progress": 10, "records_processed": 4}),
        ("failed", {"error_message": "x", "error_details": {"n": 1}}),
        ("started", {}),
        ("progress", {"progress": 70, "counters": {"rows": 2}}),
        ("succeeded", {"result": {"ok": True}}),
    ]
    after = [await _get(client, "/api/v1/jobs/a", auditor, {"min_position": created["position"]})]
    for kind, body in kinds:
        answer = await event(client, writer, "a", kind, **body)
        after.append(
            await _get(client, "/api/v1/jobs/a", auditor, {"min_position": answer["position"]})
        )
    history = await _get(client, "/api/v1/jobs/a/events", auditor, {})

    for version, expected in enumerate(after, start=1):
        at_version = await client.get(f"/api/v1/jobs/a?version={version}", headers=auditor)
        occurred = history["events"][version - 1]["occurred_at"]
        as_of = await _get(client, "/api/v1/jobs/a", auditor, {"as_of": _exact(history, version)})
        assert at_version.json() == expected
        assert at_version.headers["etag"] == f'"{version}"'
        assert as_of == expected, occurred
        assert at_version.headers["x-ledger-position"].isdigit()


async def test_before_the_job_existed_it_is_not_found_and_after_deletion_gone(
    client: Client, writer: Headers, auditor: Headers
) -> None:
    await create(client, writer, id="a")
    await event(client, writer, "a", "deleted")
    events = (await _get(client, "/api/v1/jobs/a/events", auditor, {}))["events"]
    created = datetime.fromisoformat(events[0]["occurred_at"])

    before = await client.get(
        "/api/v1/jobs/a", params={"as_of": (created - timedelta(seconds=1)).isoformat()},
        headers=auditor,
    )  # fmt: skip
    alive = await client.get(
        "/api/v1/jobs/a", params={"as_of": _exact({"events": events}, 1)}, headers=auditor
    )
    gone = await client.get("/api/v1/jobs/a?version=2", headers=auditor)
    no_such = await client.get("/api/v1/jobs/a?version=3", headers=auditor)

    assert_problem(before, 404, "job-not-found", job_id="a")
    assert alive.status_code == 200 and alive.json()["status"] == "pending"
    assert_problem(gone, 410, "job-deleted")
    assert_problem(no_such, 404, "job-not-found")


@pytest.mark.parametrize(
    "path",
    ["/api/v1/jobs/a?version=1", "/api/v1/jobs/a?as_of=2030-01-01", "/api/v1/jobs?as_of=2030-01-01",
     "/api/v1/stats?as_of=2030-01-01"],
)  # fmt: skip
@pytest.mark.parametrize("role", ["reader", "writer"])
async def test_time_travel_is_for_auditors_and_admins(
    client: Client, writer: Headers, token_for: TokenFor, path: str, role: str
) -> None:
    await create(client, writer, id="a")

    assert_problem(await client.get(path, headers=token_for("acme", role)), 403, "forbidden")
    assert (await client.get(path, headers=token_for("acme", "admin"))).status_code == 200


@pytest.mark.parametrize(
    ("query", "field"),
    [("as_of=yesterday", "as_of"), ("version=0", "version"), ("version=x", "version")],
)
async def test_bad_time_travel_parameters_name_the_field(
    client: Client, writer: Headers, auditor: Headers, query: str, field: str
) -> None:
    await create(client, writer, id="a")

    assert_problem(
        await client.get(f"/api/v1/jobs/a?{query}", headers=auditor), 400, "invalid-field",
        field=field,
    )  # fmt: skip


async def test_as_of_lists_stay_in_the_tenant_and_a_global_admin_names_it(
    client: Client, writer: Headers, auditor: Headers, token_for: TokenFor
) -> None:
    await create(client, writer, id="a")
    last = await create(client, token_for("globex", "writer"), id="g")
    later = {"as_of": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
             "min_position": last["position"]}  # fmt: skip

    own = await _get(client, "/api/v1/jobs", auditor, later)
    every = await _get(client, "/api/v1/jobs", ADMIN, later)
    one = await _get(client, "/api/v1/stats", ADMIN, {**later, "tenant": "globex"})

    assert [j["id"] for j in own["jobs"]] == ["a"]
    assert sorted(j["tenant"] for j in every["jobs"]) == ["acme", "globex"]
    assert one["total"] == 1


async def test_every_get_answer_says_how_fresh_it_is(
    client: Client, writer: Headers, auditor: Headers
) -> None:
    created = await create(client, writer, id="a")
    paths = [
        f"/api/v1/jobs?min_position={created['position']}",  # reads of job a follow
        "/api/v1/jobs?as_of=2030-01-01", "/api/v1/jobs/a",
        "/api/v1/jobs/a?version=1", "/api/v1/jobs/a?as_of=2030-01-01", "/api/v1/jobs/a/progress",
        "/api/v1/jobs/running", "/api/v1/jobs/a/events", "/api/v1/stats",
        "/api/v1/stats?as_of=2030-01-01", "/api/v1/events",
    ]  # fmt: skip
    for path in paths:
        response = await client.get(path, headers=auditor)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["x-ledger-position"].isdigit(), path


async def _get(client: Client, path: str, headers: Headers, params: dict[str, Any]) -> Any:
    response = await client.get(path, params=params, headers=headers)
    assert response.status_code == 200, (path, params, response.text)
    return response.json()


def _exact(history: dict[str, Any], version: int) -> str:
    """The moment of the event at `version`, to the microsecond (answers round to ms)."""
    return history["events"][version - 1]["occurred_at"]


async def test_an_as_of_list_pages_through_every_job_of_then_once(
    client: Client, writer: Headers, auditor: Headers
) -> None:
    for n in range(7):
        await create(client, writer, id=f"j{n}")
    moment = datetime.now(UTC).isoformat()
    last = await create(client, writer, id="after-the-moment")

    ids: list[str] = []
    params: dict[str, Any] = {"as_of": moment, "first": 3, "min_position": last["position"]}
    while True:
        page = await _get(client, "/api/v1/jobs", auditor, params)
        ids += [j["id"] for j in page["jobs"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        params["after"] = page["pageInfo"]["endCursor"]

    assert ids == [f"j{n}" for n in reversed(range(7))]
