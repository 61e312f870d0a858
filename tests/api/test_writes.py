"""The write API: create, events, cancel, batches, If-Match, and every refusal as a problem."""

from __future__ import annotations

import asyncio
import re

import pytest

from ledger.application import JobLedger
from ledger.domain import Job
from ledger.tokens import TokenStore
from tests.api.helpers import ADMIN, Client, Headers, assert_problem, create, event

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_create_answers_the_job_with_location_and_etag(
    client: Client, writer: Headers
) -> None:
    response = await client.post(
        "/api/v1/jobs",
        json={
            "id": "job-1",
            "job_type": "full_sync",
            "name": "Nightly",
            "parameters": {"full": True},
            "labels": {"team": "id"},
            "total_records": 10,
            "max_attempts": 3,
        },
        headers=writer,
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/api/v1/jobs/job-1"
    assert response.headers["etag"] == '"1"'
    job = response.json()
    assert job["id"] == "job-1"
    assert job["tenant"] == "acme"
    assert job["status"] == "pending"
    assert (job["progress"], job["attempt"], job["max_attempts"]) == (0, 0, 3)
    assert (job["version"], job["total_records"]) == (1, 10)
    assert job["position"] > 0
    assert job["parameters"] == {"full": True} and job["labels"] == {"team": "id"}
    assert TIMESTAMP.match(job["created_at"]) and TIMESTAMP.match(job["updated_at"])
    assert job["start_time"] is None and job["end_time"] is None and job["duration_ms"] is None
    for name in ("records_processed", "records_created", "records_updated", "records_deleted"):
        assert job[name] == 0
    assert response.headers["x-ledger-position"] == str(job["position"])


async def test_create_without_id_makes_one(client: Client, writer: Headers) -> None:
    job = await create(client, writer)
    assert re.fullmatch(r"job-[0-9a-f]{12}", job["id"])


async def test_create_with_an_existing_id_is_409(client: Client, writer: Headers) -> None:
    await create(client, writer, id="job-1")
    response = await client.post(
        "/api/v1/jobs", json={"id": "job-1", "job_type": "x"}, headers=writer
    )
    assert_problem(response, 409, "job-exists", job_id="job-1")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "job_type"),
        ({"job_type": "x", "id": "bad id!"}, "id"),
        ({"job_type": "x", "id": "-starts-with-dash"}, "id"),
        ({"job_type": "x", "max_attempts": 0}, "max_attempts"),
        ({"job_type": "x", "total_records": -1}, "total_records"),
        ({"job_type": "x", "colour": "blue"}, "colour"),
        ({"job_type": "x", "tenant": "no spaces"}, "tenant"),
        ({"job_type": 5}, "job_type"),
        ({"job_type": "x", "labels": {"k": 1}}, "labels"),
    ],
)
async def test_a_bad_field_is_400_naming_it(
    client: Client, writer: Headers, body: dict[str, object], field: str
) -> None:
    response = await client.post("/api/v1/jobs", json=body, headers=writer)
    assert_problem(response, 400, "invalid-field", field=field)


async def test_malformed_json_is_400(client: Client, writer: Headers) -> None:
    response = await client.post(
        "/api/v1/jobs",
        content=b'{"job_type": "x",',
        headers={**writer, "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "malformed-json")


async def test_a_body_over_the_limit_is_413(client: Client, writer: Headers) -> None:
    big = {"job_type": "x", "parameters": {"blob": "x" * (1024 * 1024)}}
    response = await client.post("/api/v1/jobs", json=big, headers=writer)
    assert_problem(response, 413, "body-too-large")


async def test_events_move_the_job_through_its_states(client: Client, writer: Headers) -> None:
    await create(client, writer, id="job-1")
    started = await event(client, writer, "job-1", "started")
    assert started["id"] == "job-1"
    assert (started["version"], started["status"]) == (2, "running")
    progressed = await event(
        client,
        writer,
        "job-1",
        "progress",
        progress=40,
        current_step="accounts",
        records_processed=4,
        total_records=10,
        records_created=1,
    )
    assert progressed["position"] > started["position"]
    done = await event(client, writer, "job-1", "succeeded", records_created=3, result={"ok": 1})
    assert (done["version"], done["status"]) == (4, "completed")
    deleted = await event(client, writer, "job-1", "deleted")
    assert deleted["status"] == "deleted"


async def test_event_answer_has_etag_and_position(client: Client, writer: Headers) -> None:
    await create(client, writer, id="job-1")
    response = await client.post(
        "/api/v1/jobs/job-1/events", json={"type": "started"}, headers=writer
    )
    assert response.status_code == 201
    assert response.headers["etag"] == '"2"'
    assert response.headers["x-ledger-position"] == str(response.json()["position"])


async def test_a_bad_transition_is_409_with_the_current_status(
    client: Client, writer: Headers
) -> None:
    await create(client, writer, id="job-1")
    response = await client.post(
        "/api/v1/jobs/job-1/events", json={"type": "succeeded"}, headers=writer
    )
    problem = assert_problem(response, 409, "invalid-transition", job_status="pending")
    assert "pending" in problem["detail"]


async def test_a_failed_job_may_retry_while_attempts_remain(
    client: Client, writer: Headers
) -> None:
    await create(client, writer, id="job-1", max_attempts=2)
    await event(client, writer, "job-1", "started")
    await event(client, writer, "job-1", "failed", error_message="boom", error_details={"a": 1})
    again = await event(client, writer, "job-1", "started")
    assert again["status"] == "running"
    await event(client, writer, "job-1", "failed", error_message="boom again")
    response = await client.post(
        "/api/v1/jobs/job-1/events", json={"type": "started"}, headers=writer
    )
    assert_problem(response, 409, "invalid-transition", job_status="failed")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "progress", "progress": 101}, "progress"),
        ({"type": "progress", "progress": -1}, "progress"),
        ({"type": "progress", "records_processed": -5}, "records_processed"),
        ({"type": "progress", "bogus": 1}, "bogus"),
        ({"type": "failed"}, "error_message"),
        ({"type": "failed", "error_message": ""}, "error_message"),
        ({"type": "exploded"}, "type"),
        ({"progress": 5}, "type"),
    ],
)
async def test_a_bad_event_is_400_naming_the_field(
    client: Client, writer: Headers, body: dict[str, object], field: str
) -> None:
    await create(client, writer, id="job-1")
    await event(client, writer, "job-1", "started")
    response = await client.post("/api/v1/jobs/job-1/events", json=body, headers=writer)
    assert_problem(response, 400, "invalid-field", field=field)


async def test_an_event_for_an_unknown_job_is_404(client: Client, writer: Headers) -> None:
    response = await client.post(
        "/api/v1/jobs/nope/events", json={"type": "started"}, headers=writer
    )
    assert_problem(response, 404, "job-not-found", job_id="nope")


async def test_a_deleted_job_is_gone_to_writes(client: Client, writer: Headers) -> None:
    await create(client, writer, id="job-1")
    await event(client, writer, "job-1", "deleted")
    response = await client.post(
        "/api/v1/jobs/job-1/events", json={"type": "started"}, headers=writer
    )
    assert_problem(response, 410, "job-deleted", job_id="job-1")
    assert_problem(await client.delete("/api/v1/jobs/job-1", headers=writer), 410, "job-deleted")


async def test_delete_cancels_a_pending_or_running_job(
    client: Client, writer: Headers, ledger: JobLedger
) -> None:
    await create(client, writer, id="job-1")
    await create(client, writer, id="job-2")
    await event(client, writer, "job-2", "started")
    for job_id in ("job-1", "job-2"):
        response = await client.delete(f"/api/v1/jobs/{job_id}", headers=writer)
        assert response.status_code == 204, response.text
        assert response.content == b""
        assert ledger.get_job("acme", job_id).status == "cancelled"


async def test_cancelling_a_finished_job_is_409(client: Client, writer: Headers) -> None:
    await create(client, writer, id="job-1")
    await event(client, writer, "job-1", "started")
    await event(client, writer, "job-1", "succeeded")
    response = await client.delete("/api/v1/jobs/job-1", headers=writer)
    assert_problem(response, 409, "invalid-transition", job_status="completed")
    assert_problem(await client.delete("/api/v1/jobs/nope", headers=writer), 404, "job-not-found")


async def test_if_match_mismatch_is_412_and_writes_nothing(
    client: Client, writer: Headers, ledger: JobLedger
) -> None:
    await create(client, writer, id="job-1")
    response = await client.post(
        "/api/v1/jobs/job-1/events",
        json={"type": "started"},
        headers={**writer, "If-Match": '"7"'},
    )
    assert_problem(response, 412, "version-mismatch", expected=7, version=1)
    assert ledger.get_job("acme", "job-1").version == 1
    matching = await client.post(
        "/api/v1/jobs/job-1/events",
        json={"type": "started"},
        headers={**writer, "If-Match": '"1"'},
    )
    assert matching.status_code == 201
    cancel = await client.delete("/api/v1/jobs/job-1", headers={**writer, "If-Match": '"1"'})
    assert_problem(cancel, 412, "version-mismatch")


async def test_a_malformed_if_match_is_400(client: Client, writer: Headers) -> None:
    await create(client, writer, id="job-1")
    response = await client.post(
        "/api/v1/jobs/job-1/events",
        json={"type": "started"},
        headers={**writer, "If-Match": "yesterday"},
    )
    assert_problem(response, 400, "invalid-field", field="If-Match")


async def test_412_comes_before_409(client: Client, writer: Headers) -> None:
    await create(client, writer, id="job-1")
    response = await client.post(
        "/api/v1/jobs/job-1/events",
        json={"type": "succeeded"},
        headers={**writer, "If-Match": '"5"'},
    )
    assert_problem(response, 412, "version-mismatch")


async def test_twenty_writers_on_one_version_exactly_one_wins(
    client: Client, writer: Headers, ledger: JobLedger
) -> None:
    await create(client, writer, id="job-1")
    await event(client, writer, "job-1", "started")

    async def write(n: int) -> int:
        response = await client.post(
            "/api/v1/jobs/job-1/events",
            json={"type": "progress", "progress": n},
            headers={**writer, "If-Match": '"2"'},
        )
        if response.status_code == 412:
            assert_problem(response, 412, "version-mismatch", expected=2)
        return response.status_code

    statuses = await asyncio.gather(*(write(n) for n in range(20)))
    assert sorted(statuses) == [201] + [412] * 19
    assert ledger.get_job("acme", "job-1").version == 3


async def test_a_batch_applies_valid_items_and_reports_each_in_order(
    client: Client, writer: Headers, ledger: JobLedger
) -> None:
    await create(client, writer, id="job-1")
    await create(client, writer, id="job-2")
    response = await client.post(
        "/api/v1/events/batch",
        json={
            "events": [
                {"job_id": "job-1", "type": "started"},
                {"job_id": "ghost", "type": "started"},
                {"job_id": "job-1", "type": "progress", "progress": 50},
                {"job_id": "job-2", "type": "succeeded"},
                {"job_id": "job-1", "type": "succeeded", "records_created": 2},
            ]
        },
        headers=writer,
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["job_id"] for r in results] == ["job-1", "ghost", "job-1", "job-2", "job-1"]
    assert [r.get("status") for r in results] == ["running", None, "running", None, "completed"]
    assert [r.get("version") for r in results] == [2, None, 3, None, 4]
    assert results[1]["error"]["status"] == 404
    assert results[1]["error"]["type"].endswith("/job-not-found")
    assert results[3]["error"]["status"] == 409
    assert results[3]["error"]["job_status"] == "pending"
    assert results[0]["position"] < results[2]["position"] < results[4]["position"]
    assert ledger.get_job("acme", "job-1").version == 4
    assert ledger.get_job("acme", "job-2").version == 1


async def test_a_batch_creates_jobs_that_read_as_if_posted_one_by_one(
    client: Client, writer: Headers
) -> None:
    await create(client, writer, id="taken")
    body = {"job_type": "full_sync", "name": "Nightly", "labels": {"team": "id"}}
    posted = await create(client, writer, id="single", **body)
    response = await client.post(
        "/api/v1/events/batch",
        json={
            "events": [
                {"job_id": "bulk", "type": "created", **body},
                {"job_id": "taken", "type": "created", "job_type": "x"},
                {"job_id": "bulk", "type": "started"},
            ]
        },
        headers=writer,
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r.get("version") for r in results] == [1, None, 2]
    assert [r.get("status") for r in results] == ["pending", None, "running"]
    assert results[1]["error"]["status"] == 409
    assert results[1]["error"]["type"].endswith("/job-exists")
    seen = await client.get(
        f"/api/v1/jobs/bulk?min_position={results[2]['position']}", headers=writer
    )
    single = await client.get("/api/v1/jobs/single", headers=writer)
    bulk = seen.json()
    for same in ("job_type", "name", "labels", "parameters", "tenant", "max_attempts"):
        assert bulk[same] == single.json()[same] == posted[same]
    assert bulk["status"] == "running"


async def test_a_batch_of_only_refused_items_is_still_200(client: Client, writer: Headers) -> None:
    response = await client.post(
        "/api/v1/events/batch",
        json={"events": [{"job_id": "ghost", "type": "started"}]},
        headers={**writer, "Idempotency-Key": "all-refused"},
    )
    assert response.status_code == 200
    assert response.json()["results"][0]["error"]["status"] == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": []}, "events"),
        ({"events": [{"job_id": "a", "type": "started"}] * 1001}, "events"),
        ({"events": [{"type": "started"}]}, "events[0].job_id"),
        ({"events": [{"job_id": "a", "type": "progress", "progress": 200}]}, "events[0].progress"),
        ({}, "events"),
        ({"events": [{"job_id": "a", "type": "created"}]}, "events[0].job_type"),
        (
            {"events": [{"job_id": "bad id!", "type": "created", "job_type": "x"}]},
            "events[0].job_id",
        ),
    ],
)
async def test_a_malformed_batch_is_400_naming_the_field(
    client: Client, writer: Headers, body: dict[str, object], field: str
) -> None:
    response = await client.post("/api/v1/events/batch", json=body, headers=writer)
    assert_problem(response, 400, "invalid-field", field=field)


async def test_a_batch_of_a_thousand_is_accepted(client: Client, writer: Headers) -> None:
    await create(client, writer, id="job-1")
    events = [{"job_id": "job-1", "type": "started"}] + [
        {"job_id": "job-1", "type": "progress", "records_processed": n} for n in range(999)
    ]
    response = await client.post("/api/v1/events/batch", json={"events": events}, headers=writer)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 1000
    assert results[-1]["version"] == 1001


async def test_the_global_admin_names_the_tenant(client: Client, ledger: JobLedger) -> None:
    response = await client.post("/api/v1/jobs", json={"job_type": "x"}, headers=ADMIN)
    assert_problem(response, 400, "invalid-field", field="tenant")
    created = await client.post(
        "/api/v1/jobs", json={"id": "job-1", "job_type": "x", "tenant": "globex"}, headers=ADMIN
    )
    assert created.status_code == 201
    assert created.json()["tenant"] == "globex"
    assert created.headers["location"] == "/api/v1/jobs/job-1?tenant=globex"
    assert ledger.get_job("globex", "job-1").created_by == "admin-env"
    no_tenant = await client.post(
        "/api/v1/jobs/job-1/events", json={"type": "started"}, headers=ADMIN
    )
    assert_problem(no_tenant, 400, "invalid-field", field="tenant")
    started = await client.post(
        "/api/v1/jobs/job-1/events?tenant=globex", json={"type": "started"}, headers=ADMIN
    )
    assert started.status_code == 201
    batch = await client.post(
        "/api/v1/events/batch",
        json={"events": [{"job_id": "job-1", "type": "succeeded"}]},
        headers=ADMIN,
    )
    assert_problem(batch, 400, "invalid-field", field="tenant")


async def test_the_token_id_and_request_id_are_recorded(
    client: Client, tokens: TokenStore, ledger: JobLedger
) -> None:
    token_id, token = tokens.create("acme", "writer")
    response = await client.post(
        "/api/v1/jobs",
        json={"id": "job-1", "job_type": "x"},
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "trace-42"},
    )
    assert response.headers["x-request-id"] == "trace-42"
    job = ledger.get_job("acme", "job-1")
    assert job.created_by == token_id
    events = [e for e in ledger.repository.event_store.get(job.id) if isinstance(e, Job.Event)]
    assert [(e.actor, e.request_id) for e in events] == [(token_id, "trace-42")]


async def test_a_malformed_request_id_is_replaced(client: Client, writer: Headers) -> None:
    response = await client.post(
        "/api/v1/jobs", json={"job_type": "x"}, headers={**writer, "X-Request-ID": "bad id\t!"}
    )
    assert response.status_code == 201
    assert re.fullmatch(r"req-[0-9a-f]{16}", response.headers["x-request-id"])


async def test_parameters_shaped_like_stored_tags_are_kept_as_sent(
    client: Client, writer: Headers
) -> None:
    # Event state is JSON with tagged datetimes; a caller's own values must never be
    # read back as tags (or fail to read back, which would stall the projections).
    parameters = {
        "when": {"_type_": "datetime_iso", "_data_": "2020-01-01T00:00:00"},
        "odd": {"_type_": "no-such-type", "_data_": 1},
    }
    created = await create(client, writer, id="tagged", parameters=parameters)
    await event(client, writer, "tagged", "started")
    done = await event(client, writer, "tagged", "succeeded", result={"_type_": "x", "_data_": 2})
    assert created["parameters"] == parameters
    response = await client.get(
        f"/api/v1/jobs/tagged?min_position={done['position']}", headers=writer
    )
    assert response.status_code == 200, response.text
    assert response.json()["parameters"] == parameters
    assert response.json()["result"] == {"_type_": "x", "_data_": 2}
    history = await client.get("/api/v1/jobs/tagged/events?tenant=acme", headers=ADMIN)
    assert history.status_code == 200, history.text
    assert history.json()["events"][0]["data"]["parameters"] == parameters
