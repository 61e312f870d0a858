"""The OpenAPI document the service serves lists every dialect endpoint."""

from __future__ import annotations

from tests.dialects.conftest import Live

DIALECT_PATHS = {
    "/": "Tencent Cloud CIAM",
    "/v5/{project_id}/common/tasks/batch-query": "Huawei Cloud HSS",
    "/iam/governance/selfservice/api/v1/scheduler/jobs": "Oracle Identity Governance",
    **{
        f"/identity/v2/job/{verb}": "SpaceONE identity v2"
        for verb in ("get", "list", "stat", "delete")
    },
    **{
        f"/identity/job/{verb}": "SpaceONE identity v2"
        for verb in ("get", "list", "stat", "delete")
    },
}


def test_openapi_lists_every_dialect_endpoint(shared: Live) -> None:
    with shared.http() as client:
        response = client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    paths = response.json()["paths"]
    assert set(DIALECT_PATHS) <= set(paths), set(DIALECT_PATHS) - set(paths)
    for path, tag in DIALECT_PATHS.items():
        operation = paths[path]["post"]
        assert tag in operation["tags"] and operation["description"], path
    assert "/api/v1/jobs" in paths  # the native API is still there beside them
