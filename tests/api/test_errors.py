"""A client's mistake is never a 500; the server's own failure is a 500 without internals."""

from __future__ import annotations

import logging

import psycopg
import pytest
from psycopg import sql

from ledger.settings import Settings
from tests.api.helpers import Client, Headers, assert_problem, create, event


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"job_type": "x", "name": "a\x00b"}, "name"),
        ({"job_type": "x", "parameters": {"deep": ["ok", "n\x00l"]}}, "parameters.deep[1]"),
        ({"job_type": "x", "labels": {"k\x00": "v"}}, "labels.k\x00"),
    ],
)
async def test_nul_characters_are_refused_before_they_become_events(
    client: Client, writer: Headers, body: dict[str, object], field: str
) -> None:
    response = await client.post("/api/v1/jobs", json=body, headers=writer)
    assert_problem(response, 400, "invalid-field", field=field)


async def test_nul_in_an_event_field_is_refused(client: Client, writer: Headers) -> None:
    await create(client, writer, id="job-1")
    await event(client, writer, "job-1", "started")
    response = await client.post(
        "/api/v1/jobs/job-1/events",
        json={"type": "failed", "error_message": "boom\x00"},
        headers=writer,
    )
    assert_problem(response, 400, "invalid-field", field="error_message")


@pytest.mark.parametrize("job_id", ["%00", "a%20b", "x" * 300, "-dash"])
async def test_an_impossible_job_id_is_404(client: Client, writer: Headers, job_id: str) -> None:
    for response in (
        await client.get(f"/api/v1/jobs/{job_id}", headers=writer),
        await client.get(f"/api/v1/jobs/{job_id}/progress", headers=writer),
        await client.post(
            f"/api/v1/jobs/{job_id}/events", json={"type": "started"}, headers=writer
        ),
        await client.delete(f"/api/v1/jobs/{job_id}", headers=writer),
    ):
        assert_problem(response, 404, "job-not-found")


@pytest.mark.parametrize(
    "query",
    [
        "start_date=0001-01-01T00:00:00%2B05:00",
        "end_date=9999-12-31T23:59:59-05:00",
        "start_date=2024-13-01",
        "min_position=99999999999999999999999",
        "first=99999999999999999999999",
    ],
)
async def test_extreme_query_values_are_400(client: Client, writer: Headers, query: str) -> None:
    response = await client.get(f"/api/v1/jobs?{query}", headers=writer)
    assert_problem(response, 400, "invalid-field", field=query.partition("=")[0])


async def test_deeply_nested_json_is_400(client: Client, writer: Headers) -> None:
    body = b'{"job_type": "x", "parameters": ' + b'{"a": ' * 2000 + b"1" + b"}" * 2001
    response = await client.post(
        "/api/v1/jobs", content=body, headers={**writer, "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text


async def test_an_unexpected_failure_is_a_500_without_internals(
    client: Client, writer: Headers, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP TABLE {} CASCADE").format(
                sql.Identifier(settings.database_schema, "jobs")
            )
        )
    with caplog.at_level(logging.ERROR, logger="api"):
        response = await client.get("/api/v1/jobs", headers={**writer, "X-Request-ID": "trace-500"})
    problem = assert_problem(response, 500, "internal-error")
    assert "jobs" not in problem["detail"] and "relation" not in response.text
    assert response.headers["x-request-id"] == "trace-500"
    assert any("trace-500" in record.getMessage() for record in caplog.records)


async def test_parameters_nested_too_deep_are_400_naming_where(
    client: Client, writer: Headers
) -> None:
    nested: object = 1
    for _ in range(40):
        nested = {"a": nested}
    response = await client.post(
        "/api/v1/jobs", json={"job_type": "x", "parameters": nested}, headers=writer
    )
    problem = assert_problem(response, 400, "invalid-field")
    assert problem["field"].startswith("parameters.a.a.")


async def test_errors_come_in_the_documented_order(client: Client, writer: Headers) -> None:
    # 400 before 404: the body is checked before the job is looked up.
    bad_body = await client.post(
        "/api/v1/jobs/nope/events", json={"type": "progress", "progress": 500}, headers=writer
    )
    assert_problem(bad_body, 400, "invalid-field", field="progress")
    # 404/410 before 412, and 412 before 409.
    await create(client, writer, id="gone")
    await event(client, writer, "gone", "deleted")
    stale = {**writer, "If-Match": '"1"'}
    assert_problem(
        await client.post("/api/v1/jobs/nope/events", json={"type": "started"}, headers=stale),
        404,
        "job-not-found",
    )
    assert_problem(
        await client.post("/api/v1/jobs/gone/events", json={"type": "started"}, headers=stale),
        410,
        "job-deleted",
    )
    await create(client, writer, id="done")
    await event(client, writer, "done", "started")
    await event(client, writer, "done", "succeeded")
    assert_problem(
        await client.post("/api/v1/jobs/done/events", json={"type": "started"}, headers=stale),
        412,
        "version-mismatch",
    )
    current = {**writer, "If-Match": '"3"'}
    assert_problem(
        await client.post("/api/v1/jobs/done/events", json={"type": "started"}, headers=current),
        409,
        "invalid-transition",
        job_status="completed",
    )
