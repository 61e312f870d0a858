"""SpaceONE identity v2 Job over plain HTTP, as the Cloudforet REST gateway's callers send it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ledger.errors import JobGone
from tests.dialects.conftest import Live, done, failed, running

DOMAIN = "domain-123456789012"
PLUGIN = "plugin-aws-cloud-service-inven-collector"
JOB_INFO_KEYS = {
    "job_id", "status", "resource_group", "plugin_id", "trusted_account_id", "domain_id",
    "created_at", "updated_at", "finished_at",
}  # fmt: skip


def call(client: httpx.Client, token: str, verb: str, body: Any, v2: bool = True) -> httpx.Response:
    path = f"/identity/v2/job/{verb}" if v2 else f"/identity/job/{verb}"
    return client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert detail["code"] == code and detail["message"]


@pytest.fixture(scope="module")
def seeded(shared: Live) -> Live:
    """Five jobs of DOMAIN in every status, and one of another domain (never changed)."""
    live = shared
    labels = {"plugin_id": PLUGIN}
    live.job(
        DOMAIN,
        "job-123456789012",
        *done(),
        labels={**labels, "trusted_account_id": "ta-123456789012"},
    )
    live.job(
        DOMAIN,
        "job-3b124006c2d2",
        *done(),
        labels={**labels, "trusted_account_id": "ta-123456789012", "workspace_id": "ws-1"},
        parameters={"region": "eu"},
    )
    live.job(
        DOMAIN,
        "job-587a3d3b4db3",
        *failed("no access"),
        labels={**labels, "trusted_account_id": "ta-other"},
    )
    live.job(DOMAIN, "job-running", *running(40), labels={"plugin_id": "plugin-gcp"})
    live.job(DOMAIN, "job-pending", labels={"resource_group": "WORKSPACE", "workspace_id": "ws-1"})
    live.job("domain-other", "job-elsewhere", *done(), labels=labels)
    return live


def test_get_answers_the_documented_job_info(seeded: Live) -> None:
    token = seeded.token(DOMAIN)
    with seeded.http() as client:
        response = call(client, token, "get", {"job_id": "job-123456789012"})  # seed 000's example
    assert response.status_code == 200, response.text
    info = response.json()
    assert set(info) == JOB_INFO_KEYS  # defaults (options {}, error_message "") left out
    assert info["status"] == "SUCCESS" and info["resource_group"] == "DOMAIN"
    assert info["domain_id"] == DOMAIN and info["plugin_id"] == PLUGIN
    assert info["finished_at"].endswith("Z") and len(info["created_at"]) == 24


def test_the_gateway_path_without_v2_answers_too(seeded: Live) -> None:
    with seeded.http() as client:
        response = call(
            client, seeded.token(DOMAIN), "get", {"job_id": "job-587a3d3b4db3"}, v2=False
        )
    assert response.status_code == 200
    assert response.json()["status"] == "FAILURE"
    assert response.json()["error_message"] == "no access"


def test_list_answers_the_documented_example(seeded: Live) -> None:
    body = {"query": {"page": {"start": 1, "limit": 10}}, "trusted_account_id": "ta-123456789012"}
    with seeded.http() as client:
        response = call(client, seeded.token(DOMAIN), "list", body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["total_count"] == 2
    assert [r["job_id"] for r in answer["results"]] == ["job-3b124006c2d2", "job-123456789012"]
    assert all(set(r) >= JOB_INFO_KEYS - {"workspace_id"} for r in answer["results"])
    assert answer["results"][0]["options"] == {"region": "eu"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            {"filter": [{"k": "status", "v": "SUCCESS", "o": "eq"}]},
            {"job-123456789012", "job-3b124006c2d2"},
        ),
        (
            {"filter": [{"key": "status", "value": ["IN_PROGRESS", "PENDING"], "operator": "in"}]},
            {"job-running", "job-pending"},
        ),
        ({"filter": [{"k": "plugin_id", "v": "GCP", "o": "contain"}]}, {"job-running"}),
        ({"filter": [{"k": "status", "v": "run", "o": "contain"}]}, {"job-running"}),
        ({"filter": [{"k": "plugin_id", "v": PLUGIN, "o": "not"}]}, {"job-running", "job-pending"}),
        (
            {"filter": [{"k": "workspace_id", "v": True, "o": "exists"}]},
            {"job-3b124006c2d2", "job-pending"},
        ),
        (
            {"filter": [{"k": "trusted_account_id", "v": ["ta-1", "ta-o"], "o": "contain_in"}]},
            {"job-123456789012", "job-3b124006c2d2", "job-587a3d3b4db3"},
        ),
        (
            {"filter": [{"k": "job_id", "v": "^job-[0-9a-f]{12}$", "o": "regex"}]},
            {"job-123456789012", "job-3b124006c2d2", "job-587a3d3b4db3"},
        ),
        (
            {"filter": [{"k": "finished_at", "v": "2000-01-01T00:00:00Z", "o": "datetime_gt"}]},
            {"job-123456789012", "job-3b124006c2d2", "job-587a3d3b4db3"},
        ),
        (
            {
                "filter": [
                    {"k": "created_at", "v": "now-1h", "o": "timediff_gt"},
                    {"k": "status", "v": "FAILURE"},
                ]
            },
            {"job-587a3d3b4db3"},
        ),
        ({"filter": [{"k": "created_at", "v": "now-1h", "o": "timediff_lt"}]}, set()),
        ({"filter": [{"k": "options.region", "v": "eu"}]}, {"job-3b124006c2d2"}),
        (
            {
                "filter_or": [
                    {"k": "status", "v": "FAILURE"},
                    {"k": "resource_group", "v": "WORKSPACE"},
                ]
            },
            {"job-587a3d3b4db3", "job-pending"},
        ),
        ({"keyword": "RUNNING"}, {"job-running"}),
        (
            {"filter": [{"k": "job_id", "v": ["job-running", "job-pending"], "o": "not_in"}]},
            {"job-123456789012", "job-3b124006c2d2", "job-587a3d3b4db3"},
        ),
        (
            {"filter": [{"k": "plugin_id", "v": "AWS", "o": "not_contain"}]},
            {"job-running", "job-pending"},
        ),
        (
            {"filter": [{"k": "plugin_id", "v": ["aws", "gcp"], "o": "not_contain_in"}]},
            {"job-pending"},
        ),
        (
            {"filter": [{"k": "job_id", "v": ["^job-r", "^job-p"], "o": "regex_in"}]},
            {"job-running", "job-pending"},
        ),
        ({"filter": [{"k": "created_at", "v": "2000-01-01T00:00:00Z", "o": "lt"}]}, set()),
        (
            {
                "filter": [
                    {"k": "created_at", "v": "now-1d", "o": "timediff_gte"},
                    {"k": "created_at", "v": "now+1h", "o": "timediff_lte"},
                ]
            },
            {
                "job-123456789012",
                "job-3b124006c2d2",
                "job-587a3d3b4db3",
                "job-running",
                "job-pending",
            },
        ),
        (
            {
                "filter": [
                    {"k": "finished_at", "v": "2999-01-01", "o": "datetime_lte"},
                    {"k": "finished_at", "v": "2000-01-01", "o": "datetime_gte"},
                ]
            },
            {"job-123456789012", "job-3b124006c2d2", "job-587a3d3b4db3"},
        ),
        (
            {
                "filter": [
                    {"k": "updated_at", "v": "2999-01-01", "o": "datetime_lt"},
                    {"k": "error_message", "v": "no access", "o": "lte"},
                ]
            },
            {"job-587a3d3b4db3"},
        ),
    ],
)
def test_list_filters(seeded: Live, query: dict[str, Any], expected: set[str]) -> None:
    with seeded.http() as client:
        response = call(client, seeded.token(DOMAIN), "list", {"query": query})
    assert response.status_code == 200, response.text
    assert {r["job_id"] for r in response.json()["results"]} == expected
    assert response.json()["total_count"] == len(expected)


def test_list_shortcut_fields_are_equality_filters(seeded: Live) -> None:
    body = {"status": "SUCCESS", "workspace_id": "ws-1", "plugin_id": PLUGIN}
    with seeded.http() as client:
        response = call(client, seeded.token(DOMAIN), "list", body)
    assert [r["job_id"] for r in response.json()["results"]] == ["job-3b124006c2d2"]


def test_list_pages_sorts_counts_and_keeps_only_the_fields_asked(seeded: Live) -> None:
    token = seeded.token(DOMAIN)
    sort = [{"key": "job_id", "desc": True}]
    with seeded.http() as client:
        pages = [
            call(
                client,
                token,
                "list",
                {"query": {"sort": sort, "page": {"start": start, "limit": 2}}},
            ).json()
            for start in (1, 3, 5)
        ]
        counted = call(client, token, "list", {"query": {"count_only": True}}).json()
        only = call(
            client, token, "list", {"query": {"only": ["job_id", "status"], "page": {"limit": 1}}}
        ).json()
    ids = [r["job_id"] for page in pages for r in page["results"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 5 == len(set(ids))
    assert [len(p["results"]) for p in pages] == [2, 2, 1]
    assert all(p["total_count"] == 5 for p in pages)
    assert counted == {"results": [], "total_count": 5}
    assert set(only["results"][0]) == {"job_id", "status"} and only["total_count"] == 5


def test_stat_groups_counts_and_sorts_in_sql(seeded: Live) -> None:
    query = {
        "query": {
            "aggregate": [
                {"group": {"keys": [{"key": "status", "name": "status"}],
                           "fields": [{"operator": "count", "name": "jobs"}]}},
                {"sort": {"key": "jobs", "desc": True}},
                {"limit": 2},
            ]
        }
    }  # fmt: skip
    with seeded.http() as client:
        response = call(client, seeded.token(DOMAIN), "stat", query)
        total = call(
            client,
            seeded.token(DOMAIN),
            "stat",
            {
                "query": {
                    "aggregate": [{"count": {"name": "n"}}],
                    "filter": [{"k": "status", "v": "SUCCESS"}],
                }
            },
        )
        distinct = call(
            client,
            seeded.token(DOMAIN),
            "stat",
            {"query": {"distinct": "status", "page": {"start": 1, "limit": 3}}},
        )
        sums = call(
            client,
            seeded.token(DOMAIN),
            "stat",
            {
                "query": {
                    "aggregate": [
                        {
                            "group": {
                                "keys": [{"k": "plugin_id", "n": "plugin"}],
                                "fields": [
                                    {"k": "created_at", "n": "first", "o": "min"},
                                    {"o": "count", "n": "count"},
                                ],
                            }
                        },
                        {"sort": {"keys": [{"key": "count", "desc": True}]}},
                    ]
                }
            },
        )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0] == {"status": "SUCCESS", "jobs": 2} and len(results) == 2
    assert results[1]["jobs"] == 1 and results[1]["status"] in ("FAILURE", "IN_PROGRESS", "PENDING")
    assert total.json() == {"results": [{"n": 2}]}
    assert distinct.json() == {"results": ["SUCCESS", "FAILURE", "PENDING"], "total_count": 4}
    groups = sums.json()["results"]
    assert groups[0]["plugin"] == PLUGIN and groups[0]["count"] == 3 and groups[0]["first"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"query": {}}, "ERROR_REQUIRED_PARAMETER"),
        (
            {"query": {"aggregate": [{"group": {"keys": [{"key": "secret", "name": "x"}]}}]}},
            "ERROR_INVALID_ARGUMENT",
        ),
        (
            {"query": {"aggregate": [{"group": {"fields": [{"o": "push", "n": "x"}]}}]}},
            "ERROR_INVALID_ARGUMENT",
        ),
        (
            {"query": {"aggregate": [{"count": {"name": "n"}}, {"sort": {"key": "nope"}}]}},
            "ERROR_INVALID_ARGUMENT",
        ),
    ],
)
def test_stat_refusals(seeded: Live, body: dict[str, Any], code: str) -> None:
    with seeded.http() as client:
        assert_error(call(client, seeded.token(DOMAIN), "stat", body), 400, code)


def test_delete_appends_a_deleted_event_and_keeps_history(live: Live) -> None:
    live.job(DOMAIN, "job-123456789012", *failed("no access"))
    live.job("domain-other", "job-123456789012")
    writer = live.token(DOMAIN, "writer")
    with live.http() as client:
        response = call(client, writer, "delete", {"job_id": "job-123456789012"})  # seed 000's
        assert response.status_code == 200 and response.json() == {}
        with pytest.raises(JobGone):
            live.ledger.get_job(DOMAIN, "job-123456789012")
        events = list(live.ledger.repository.event_store.get(f"{DOMAIN}/job-123456789012"))
        assert [type(e).__name__ for e in events] == [
            "Created", "Started", "Failed", "Deleted",
        ]  # fmt: skip
        assert live.ledger.get_job("domain-other", "job-123456789012")  # not another domain's
        live.wait(live.ledger.recorder.max_notification_id() or 0)
        assert_error(
            call(client, writer, "get", {"job_id": "job-123456789012"}), 404, "ERROR_NOT_FOUND"
        )
        again = call(client, writer, "delete", {"job_id": "job-123456789012"})
        assert_error(again, 404, "ERROR_NOT_FOUND")


@pytest.mark.parametrize(
    ("verb", "body", "status", "code"),
    [
        ("get", {"job_id": "job-nope"}, 404, "ERROR_NOT_FOUND"),
        ("get", {"job_id": "job-elsewhere"}, 404, "ERROR_NOT_FOUND"),  # another domain's job
        ("get", {}, 400, "ERROR_REQUIRED_PARAMETER"),
        ("get", {"job_id": 7}, 400, "ERROR_INVALID_ARGUMENT"),
        ("list", {"query": {"filter": [{"k": "secret", "v": 1}]}}, 400, "ERROR_INVALID_ARGUMENT"),
        (
            "list",
            {"query": {"filter": [{"k": "status", "v": "DONE"}]}},
            400,
            "ERROR_INVALID_ARGUMENT",
        ),
        (
            "list",
            {"query": {"filter": [{"k": "status", "v": "x", "o": "near"}]}},
            400,
            "ERROR_INVALID_ARGUMENT",
        ),
        ("list", {"query": {"filter": [{"v": "x"}]}}, 400, "ERROR_REQUIRED_PARAMETER"),
        (
            "list",
            {"query": {"filter": [{"k": "job_id", "v": "(", "o": "regex"}]}},
            400,
            "ERROR_INVALID_ARGUMENT",
        ),
        ("list", {"unknown": 1}, 400, "ERROR_INVALID_ARGUMENT"),
        (
            "list",
            {
                "query": {
                    "filter": [{"k": "created_at", "v": "now-99999999999d", "o": "timediff_gt"}]
                }
            },
            400,
            "ERROR_INVALID_ARGUMENT",
        ),
        (
            "list",
            {"query": {"filter": [{"k": "updated_at", "v": "someday", "o": "datetime_gt"}]}},
            400,
            "ERROR_INVALID_ARGUMENT",
        ),
        ("delete", {"job_id": "job-123456789012"}, 403, "ERROR_PERMISSION_DENIED"),  # a reader
        ("list", {"domain_id": "domain-other"}, 403, "ERROR_PERMISSION_DENIED"),
    ],
)
def test_errors_use_the_gateway_envelope(
    seeded: Live, verb: str, body: dict[str, Any], status: int, code: str
) -> None:
    with seeded.http() as client:
        assert_error(call(client, seeded.token(DOMAIN), verb, body), status, code)


def test_an_id_postgresql_cannot_hold_is_not_found(seeded: Live) -> None:
    writer = seeded.token(DOMAIN, "writer")
    with seeded.http() as client:
        for verb in ("get", "delete"):
            response = call(client, writer, verb, {"job_id": "job-\u0000"})
            assert_error(response, 404, "ERROR_NOT_FOUND")


def test_a_missing_or_revoked_token_is_an_authenticate_failure(seeded: Live) -> None:
    with seeded.http() as client:
        assert_error(
            client.post("/identity/v2/job/list", json={}), 401, "ERROR_AUTHENTICATE_FAILURE"
        )
        assert_error(call(client, "ltk_x.y", "list", {}), 401, "ERROR_AUTHENTICATE_FAILURE")
        bad = client.post(
            "/identity/v2/job/list",
            content=b"{nope",
            headers={"Authorization": f"Bearer {seeded.token(DOMAIN)}"},
        )
        assert_error(bad, 400, "ERROR_INVALID_ARGUMENT")


def test_a_global_admin_names_the_domain(seeded: Live) -> None:
    admin = seeded.token(None, "admin")
    with seeded.http() as client:
        assert_error(
            call(client, admin, "get", {"job_id": "job-elsewhere"}), 400, "ERROR_REQUIRED_PARAMETER"
        )
        found = call(client, admin, "get", {"job_id": "job-elsewhere", "domain_id": "domain-other"})
        everyone = call(client, admin, "list", {"query": {"count_only": True}})
    assert found.json()["domain_id"] == "domain-other"
    assert everyone.json()["total_count"] == 6
