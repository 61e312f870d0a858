"""Helpers for API tests: create a job, record an event, check a problem answer."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

Client = AsyncTestClient[Litestar]
Headers = dict[str, str]
ADMIN: Headers = {"Authorization": "Bearer test-admin-token"}
"""The settings fixture's LEDGER_ADMIN_TOKEN: a global admin."""


async def create(client: Client, headers: Headers, **body: Any) -> dict[str, Any]:
    """Create a job and return its answer body (asserting the 201)."""
    body.setdefault("job_type", "full_sync")
    response = await client.post("/api/v1/jobs", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def event(
    client: Client, headers: Headers, job_id: str, type_: str, **body: Any
) -> dict[str, Any]:
    """Record an event and return its answer body (asserting the 201)."""
    response = await client.post(
        f"/api/v1/jobs/{job_id}/events", json={"type": type_, **body}, headers=headers
    )
    assert response.status_code == 201, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


def assert_problem(response: Any, status: int, slug: str, **extras: Any) -> dict[str, Any]:
    """The answer is an RFC 9457 problem of this status and type, with these members."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["type"].endswith("/" + slug), problem
    assert problem["title"] and problem["detail"]
    for name, value in extras.items():
        assert problem.get(name) == value, (name, problem)
    return problem
