"""Idempotency-Key: a repeat gets the first answer and appends nothing; a misuse is 422."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ledger.application import JobLedger
from tests.api.helpers import Client, Headers, assert_problem, create, event


def keyed(headers: Headers, key: str) -> Headers:
    return {**headers, "Idempotency-Key": key}


async def test_a_repeated_create_replays_the_first_answer(
    client: Client, writer: Headers, ledger: JobLedger
) -> None:
    body = {"job_type": "full_sync"}  # no id: a second append would make a second job
    first = await client.post("/api/v1/jobs", json=body, headers=keyed(writer, "k-1"))
    again = await client.post("/api/v1/jobs", json=body, headers=keyed(writer, "k-1"))
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["etag"] == first.headers["etag"]
    job_id = first.json()["id"]
    assert ledger.get_job("acme", job_id).version == 1


async def test_a_repeated_event_appends_once(
    client: Client, writer: Headers, ledger: JobLedger
) -> None:
    await create(client, writer, id="job-1")
    await event(client, writer, "job-1", "started")
    body = {"type": "progress", "records_processed": 5}
    answers = [
        await client.post("/api/v1/jobs/job-1/events", json=body, headers=keyed(writer, "p-1"))
        for _ in range(3)
    ]
    assert {a.status_code for a in answers} == {201}
    assert len({a.content for a in answers}) == 1
    assert ledger.get_job("acme", "job-1").version == 3


async def test_a_refusal_is_replayed_too(client: Client, writer: Headers) -> None:
    await create(client, writer, id="job-1")
    body = {"type": "succeeded"}
    first = await client.post("/api/v1/jobs/job-1/events", json=body, headers=keyed(writer, "r"))
    assert_problem(first, 409, "invalid-transition", job_status="pending")
    await event(client, writer, "job-1", "started")
    # The job could succeed now, but the key's first answer stands.
    again = await client.post("/api/v1/jobs/job-1/events", json=body, headers=keyed(writer, "r"))
    assert again.status_code == 409
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"


async def test_a_bad_body_is_the_keys_first_answer(client: Client, writer: Headers) -> None:
    bad = {"job_type": "x", "max_attempts": 0}
    first = await client.post("/api/v1/jobs", json=bad, headers=keyed(writer, "b"))
    assert_problem(first, 400, "invalid-field", field="max_attempts")
    again = await client.post("/api/v1/jobs", json=bad, headers=keyed(writer, "b"))
    assert (again.status_code, again.content) == (400, first.content)
    other = await client.post("/api/v1/jobs", json={"job_type": "x"}, headers=keyed(writer, "b"))
    assert_problem(other, 422, "idempotency-key-reused")


async def test_the_same_key_with_another_body_or_path_is_422(
    client: Client, writer: Headers, ledger: JobLedger
) -> None:
    await create(client, writer, id="job-1")
    await create(client, writer, id="job-2")
    await client.post(
        "/api/v1/jobs/job-1/events", json={"type": "started"}, headers=keyed(writer, "k")
    )
    other_body = await client.post(
        "/api/v1/jobs/job-1/events", json={"type": "cancelled"}, headers=keyed(writer, "k")
    )
    assert_problem(other_body, 422, "idempotency-key-reused")
    other_path = await client.post(
        "/api/v1/jobs/job-2/events", json={"type": "started"}, headers=keyed(writer, "k")
    )
    assert_problem(other_path, 422, "idempotency-key-reused")
    other_method = await client.delete("/api/v1/jobs/job-1", headers=keyed(writer, "k"))
    assert_problem(other_method, 422, "idempotency-key-reused")
    assert ledger.get_job("acme", "job-1").version == 2
    assert ledger.get_job("acme", "job-2").version == 1


async def test_keys_are_scoped_per_tenant(
    client: Client, token_for: Callable[[str | None, str], Headers]
) -> None:
    acme, globex = token_for("acme", "writer"), token_for("globex", "writer")
    one = await client.post("/api/v1/jobs", json={"job_type": "a"}, headers=keyed(acme, "same"))
    two = await client.post("/api/v1/jobs", json={"job_type": "b"}, headers=keyed(globex, "same"))
    assert one.status_code == two.status_code == 201
    assert (one.json()["tenant"], two.json()["tenant"]) == ("acme", "globex")
    assert "idempotent-replayed" not in two.headers


async def test_a_repeated_cancel_replays_204(
    client: Client, writer: Headers, ledger: JobLedger
) -> None:
    await create(client, writer, id="job-1")
    first = await client.delete("/api/v1/jobs/job-1", headers=keyed(writer, "c"))
    again = await client.delete("/api/v1/jobs/job-1", headers=keyed(writer, "c"))
    assert first.status_code == again.status_code == 204
    assert again.headers["idempotent-replayed"] == "true"
    assert ledger.get_job("acme", "job-1").version == 2


async def test_a_repeated_batch_appends_once(
    client: Client, writer: Headers, ledger: JobLedger
) -> None:
    await create(client, writer, id="job-1")
    body = {
        "events": [
            {"job_id": "job-1", "type": "started"},
            {"job_id": "job-1", "type": "progress", "progress": 10},
        ]
    }
    first = await client.post("/api/v1/events/batch", json=body, headers=keyed(writer, "bt"))
    again = await client.post("/api/v1/events/batch", json=body, headers=keyed(writer, "bt"))
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert ledger.get_job("acme", "job-1").version == 3


async def test_concurrent_requests_with_one_key_append_once(
    client: Client, writer: Headers, ledger: JobLedger
) -> None:
    await create(client, writer, id="job-1")
    await event(client, writer, "job-1", "started")

    async def send() -> tuple[int, bytes]:
        response = await client.post(
            "/api/v1/jobs/job-1/events",
            json={"type": "progress", "progress": 7},
            headers=keyed(writer, "race"),
        )
        return response.status_code, response.content

    answers = await asyncio.gather(*(send() for _ in range(10)))
    assert {status for status, _ in answers} == {201}
    assert len({body for _, body in answers}) == 1
    assert ledger.get_job("acme", "job-1").version == 3


async def test_concurrent_creates_with_one_key_make_one_job(
    client: Client, writer: Headers
) -> None:
    async def send() -> tuple[int, bytes]:
        response = await client.post(
            "/api/v1/jobs", json={"job_type": "x"}, headers=keyed(writer, "create-race")
        )
        return response.status_code, response.content

    answers = await asyncio.gather(*(send() for _ in range(10)))
    assert {status for status, _ in answers} == {201}
    assert len({body for _, body in answers}) == 1


async def test_a_malformed_key_is_400(client: Client, writer: Headers) -> None:
    response = await client.post(
        "/api/v1/jobs", json={"job_type": "x"}, headers=keyed(writer, "x" * 300)
    )
    assert_problem(response, 400, "invalid-field", field="Idempotency-Key")


async def test_auth_comes_before_a_replay(client: Client, writer: Headers, reader: Headers) -> None:
    body = {"job_type": "x"}
    assert (await client.post("/api/v1/jobs", json=body, headers=keyed(writer, "z"))).is_success
    denied = await client.post("/api/v1/jobs", json=body, headers=keyed(reader, "z"))
    assert_problem(denied, 403, "forbidden")
    anonymous = await client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "z"})
    assert_problem(anonymous, 401, "unauthorized")
