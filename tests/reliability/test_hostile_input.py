"""Hostile and malformed requests against a served process: each is answered with a clear
client error (problem+json on the native API, the vendor's error shape on a dialect), never
a 5xx, and the database is exactly as it was."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from ledger.credentials import CredentialStore
from ledger.tokens import TokenStore
from tests.e2e.processes import Served
from tests.reliability.harness import Cluster, bearer

pytestmark = pytest.mark.reliability

JOB = "hostile-1"
HIDDEN = "hidden-of-another-tenant"
"""A job of tenant `other`: no answer to tenant acme may name it."""
MB_STRING = "x" * 1_000_000
SQL_METACHARACTERS = [
    "'; DROP TABLE jobs; --",
    "' OR '1'='1",
    '" OR ""="',
    "x') UNION SELECT secret_hash FROM api_tokens --",
    "%",
    "_",
    "\\",
    "$1",
    "1; SELECT pg_sleep(10)",
    "*/ SELECT 1 /*",
    "\u0000",
    "\ud800",
]
IN_URLS = [v for v in SQL_METACHARACTERS if v.isprintable()]
"""What a URL can carry (U+0000 and a lone surrogate only travel in JSON)."""


@pytest.fixture(scope="module")
def served(module_cluster: Cluster) -> Served:
    return module_cluster.serve()


@pytest.fixture(scope="module")
def token(module_cluster: Cluster, served: Served) -> str:
    token = TokenStore(module_cluster.settings).create("acme", "writer")[1]
    with httpx.Client(base_url=served.url, headers=bearer(token), timeout=10) as http:
        assert http.post("/api/v1/jobs", json={"id": JOB, "job_type": "hostile"}).is_success
        assert http.post(f"/api/v1/jobs/{JOB}/events", json={"type": "started"}).is_success
    other = TokenStore(module_cluster.settings).create("other", "writer")[1]
    with httpx.Client(base_url=served.url, headers=bearer(other), timeout=10) as http:
        assert http.post("/api/v1/jobs", json={"id": HIDDEN, "job_type": "hostile"}).is_success
    module_cluster.wait_projected(served.url)
    return token


@pytest.fixture(scope="module")
def tencent_credential(module_cluster: Cluster, token: str) -> tuple[str, str]:
    issued = CredentialStore(module_cluster.settings).create("tencent", "acme")
    return issued.id, issued.secret


@pytest.fixture
def api(served: Served, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, headers=bearer(token), timeout=30) as client:
        yield client


@pytest.fixture
def untouched(module_cluster: Cluster) -> Iterator[None]:
    """The test's requests leave every table of the schema as it was (row counts and the
    log's content hash), and no table goes missing."""
    before = snapshot(module_cluster)
    yield
    assert snapshot(module_cluster) == before


def snapshot(cluster: Cluster) -> dict[str, Any]:
    with cluster.connect() as conn:
        tables = [
            r["tablename"]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename",
                (cluster.settings.database_schema,),
            )
        ]
        counts = {t: conn.execute(f'SELECT count(*) AS n FROM "{t}"').fetchone() for t in tables}
        log = conn.execute(
            "SELECT md5(string_agg(originator_id || originator_version || encode(state, 'hex'), "
            "',' ORDER BY notification_id)) AS digest FROM ledger_events"
        ).fetchone()
    return {"counts": counts, "log": log}


def assert_client_problem(answer: httpx.Response, status: int | None = None) -> dict[str, Any]:
    """A 4xx problem+json with type, title, status and a detail that says what is wrong."""
    assert 400 <= answer.status_code < 500, f"{answer.status_code}: {answer.text[:300]}"
    if status is not None:
        assert answer.status_code == status, answer.text[:300]
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = answer.json()
    assert problem["status"] == answer.status_code
    assert problem["type"].startswith("https://") and problem["title"] and problem["detail"]
    assert len(answer.content) < 4096, "the problem does not echo the hostile input back"
    return problem


def post_raw(api: httpx.Client, path: str, body: bytes) -> httpx.Response:
    return api.post(path, content=body, headers={"Content-Type": "application/json"})


def post_json(api: httpx.Client, path: str, body: object) -> httpx.Response:
    """JSON with escapes for what UTF-8 cannot carry (a lone surrogate travels as \\ud800)."""
    return post_raw(api, path, json.dumps(body).encode())


# -- bodies --------------------------------------------------------------------------------


@pytest.mark.usefixtures("untouched")
def test_a_body_over_one_mebibyte_is_413(api: httpx.Client) -> None:
    body = json.dumps({"job_type": "x", "name": "y" * (2 * 1024 * 1024)}).encode()
    assert_client_problem(post_raw(api, "/api/v1/jobs", body), 413)
    # Told by Content-Length or not, the limit holds.
    streamed = api.post(
        "/api/v1/jobs",
        content=iter([body[:1000], body[1000:]]),
        headers={"Content-Type": "application/json"},
    )
    assert_client_problem(streamed, 413)


DEEP = b'{"job_type": "x", "parameters": {"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}"
WIDE = json.dumps({"job_type": "x", "labels": {f"k{n}": "v" for n in range(60_000)}}).encode()
LONG_ARRAY = json.dumps({"job_type": "x", "labels": list(range(100_000))}).encode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (DEEP, None),
        (
            b'{"job_type": "x", "parameters": ' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}",
            "parameters",
        ),
        (WIDE, "labels"),
        (LONG_ARRAY, "labels"),
        (b'{"job_type": "\xff\xfe\xfd"}', None),
        (b'{"job_type": "ok", "name": "\xed\xa0\x80"}', None),  # a lone surrogate in UTF-8
        (b"\xef\xbb\xbf" + b'{"job_type": "x"}' + b"\x00" * 10, None),
        (b'{"job_type": "x", "colour": "red"}', "colour"),
        (b'{"job_type": "x", "job_type": "y", "tenant": "acme", "__proto__": {}}', "__proto__"),
        (b'{"job_type": "x", "total_records": -1}', "total_records"),
        (b'{"job_type": "x", "total_records": 18446744073709551616}', "total_records"),
        (b'{"job_type": "x", "total_records": 1e400}', None),
        (b'{"job_type": "x", "max_attempts": 0}', "max_attempts"),
        (b'{"job_type": "x", "max_attempts": 1.5}', "max_attempts"),
        (b'{"job_type": "x", "max_attempts": "2"}', "max_attempts"),
        (json.dumps({"job_type": MB_STRING}).encode(), "job_type"),
        (json.dumps({"job_type": "x", "name": MB_STRING}).encode(), "name"),
        (json.dumps({"job_type": "x", "id": MB_STRING}).encode(), "id"),
        (json.dumps({"job_type": "x", "labels": {"k": MB_STRING}}).encode(), "labels"),
        (json.dumps({"job_type": "x", "tenant": MB_STRING}).encode(), "tenant"),
        (json.dumps({"job_type": "x", "parameters": {"a\u0000b": 1}}).encode(), "parameters"),
        (b"[]", None),
        (b"null", None),
        (b"", None),
        (b"{", None),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
@pytest.mark.usefixtures("untouched")
def test_malformed_job_bodies_are_400_naming_the_field(
    api: httpx.Client, body: bytes, field: str | None
) -> None:
    problem = assert_client_problem(post_raw(api, "/api/v1/jobs", body), 400)
    if field is not None:
        assert problem["field"].split(".")[0] == field, problem


EVENT_BODIES: list[dict[str, Any]] = [
    {"type": "exploded"},
    {"type": "STARTED"},
    {"type": None},
    {},
    {"type": "progress", "progress": 101},
    {"type": "progress", "progress": -1},
    {"type": "progress", "progress": 2**64},
    {"type": "progress", "progress": 50.5},
    {"type": "progress", "progress": "50"},
    {"type": "progress", "records_processed": 2**53},
    {"type": "progress", "current_step": MB_STRING},
    {"type": "progress", "counters": {"": 1}},
    {"type": "progress", "counters": {"c": -5}},
    {"type": "failed"},
    {"type": "failed", "error_message": ""},
    {"type": "failed", "error_message": MB_STRING},
    {"type": "cancelled", "reason": MB_STRING},
    {"type": "started", "attempt": 7},
]


@pytest.mark.parametrize("body", EVENT_BODIES, ids=lambda b: json.dumps(b)[:40])
@pytest.mark.usefixtures("untouched")
def test_malformed_events_are_400(api: httpx.Client, body: dict[str, Any]) -> None:
    assert_client_problem(api.post(f"/api/v1/jobs/{JOB}/events", json=body), 400)
    batch = {"events": [{"job_id": JOB, **body}]}
    assert_client_problem(api.post("/api/v1/events/batch", json=batch), 400)


@pytest.mark.usefixtures("untouched")
def test_malformed_headers_are_400(api: httpx.Client) -> None:
    event = {"type": "progress", "progress": 5}
    for if_match in ['"abc"', '"-1"', '"99999999999999999999"', "W/", "'; DROP TABLE jobs"]:
        answer = api.post(f"/api/v1/jobs/{JOB}/events", json=event, headers={"If-Match": if_match})
        assert_client_problem(answer, 400 if if_match != '"99999999999999999999"' else None)
    for key in ["", "k" * 256, "a b", "tab\there"]:
        answer = api.post(
            f"/api/v1/jobs/{JOB}/events", json=event, headers={"Idempotency-Key": key}
        )
        assert_client_problem(answer, 400)
    big = api.get("/api/v1/jobs", headers={"X-Padding": "p" * 20_000})
    assert_client_problem(big, 431)
    # Past twice the limit the server refuses the request head before it is parsed.
    try:
        huge = api.get("/api/v1/jobs", headers={"X-Padding": "p" * 70_000})
    except httpx.TransportError:
        pass
    else:
        assert 400 <= huge.status_code < 500, huge.status_code


# -- queries -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"status": "exploded"},
        {"status": "deleted"},
        {"first": "0"},
        {"first": "201"},
        {"first": "1e3"},
        {"first": str(2**70)},
        {"start_date": "yesterday"},
        {"end_date": "2024-13-45"},
        {"start_date": "9" * 70},
        {"after": "not-a-cursor"},
        {"after": "eyJ0IjoiMjAyNC0wMS0wMSJ9"},
        {"after": "A" * 600},
        {"after": "////"},
        {"min_position": "-1"},
        {"min_position": str(2**64)},
        {"job_type": MB_STRING[:60_000]},
    ],
    ids=lambda p: json.dumps(p)[:40],
)
@pytest.mark.usefixtures("untouched")
def test_bad_list_parameters_are_400(api: httpx.Client, params: dict[str, str]) -> None:
    assert_client_problem(api.get("/api/v1/jobs", params=params), 400)


@pytest.mark.parametrize("value", IN_URLS)
@pytest.mark.usefixtures("untouched")
def test_sql_metacharacters_in_every_filter_are_refused_or_harmless(
    api: httpx.Client, value: str
) -> None:
    reads = [
        *(("/api/v1/jobs", {name: value}) for name in
          ("job_type", "status", "start_date", "end_date", "after", "first", "tenant",
           "min_position")),
        *(("/api/v1/stats", {name: value}) for name in
          ("group_by", "start_date", "end_date", "tenant", "min_position")),
        ("/api/v1/jobs/running", {"tenant": value}),
        (f"/api/v1/jobs/{JOB}", {"tenant": value}),
        (f"/api/v1/jobs/{quote(value, safe='')}", {}),
        (f"/api/v1/jobs/{quote(value, safe='')}/progress", {}),
    ]  # fmt: skip
    for path, params in reads:
        answer = api.get(path, params=params)
        assert HIDDEN not in answer.text
        if not answer.is_success:
            assert_client_problem(answer)
    escaped = quote(value, safe="")
    for path in (f"/api/v1/jobs/{escaped}", f"/api/v1/jobs/{escaped}/events"):
        answer = api.post(path, json={"type": "started"})
        assert answer.status_code in (400, 404, 405), answer.text


# -- dialects --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", SQL_METACHARACTERS)
@pytest.mark.usefixtures("untouched")
def test_sql_metacharacters_in_spaceone_filters_are_refused_or_harmless(
    api: httpx.Client, value: str
) -> None:
    queries: list[dict[str, Any]] = [
        {"query": {"filter": [{"k": "job_id", "v": value, "o": op}]}}
        for op in ("eq", "contain", "in", "not", "regex", "datetime_gt", "timediff_lt")
    ]
    queries += [
        {"query": {"filter": [{"k": value, "v": "x"}]}},
        {"query": {"filter": [{"k": f"options.{value}", "v": "x"}]}},
        {"query": {"filter": [{"k": "status", "v": "x", "o": value}]}},
        {"query": {"sort": [{"key": value}]}},
        {"query": {"only": [value]}},
        {"query": {"keyword": value}},
        {"job_id": value},
        {"plugin_id": value, "workspace_id": value},
    ]
    for body in queries:
        for verb in ("list", "stat" if "query" not in body else "list"):
            answer = post_json(api, f"/identity/v2/job/{verb}", body)
            assert answer.status_code < 500, f"{body}: {answer.status_code} {answer.text[:300]}"
            assert HIDDEN not in answer.text
    stat = {"query": {"aggregate": [{"group": {"keys": [{"key": value, "name": "n"}]}}]}}
    assert post_json(api, "/identity/v2/job/stat", stat).status_code < 500
    answer = post_json(api, "/identity/v2/job/get", {"job_id": value})
    assert 400 <= answer.status_code < 500


@pytest.mark.parametrize("value", SQL_METACHARACTERS)
@pytest.mark.usefixtures("untouched")
def test_sql_metacharacters_in_huawei_filters_are_refused_or_harmless(
    served: Served, token: str, value: str
) -> None:
    with httpx.Client(base_url=served.url, headers={"X-Auth-Token": token}, timeout=30) as http:
        for body in (
            {"task_type": value},
            {"task_type": "cluster_scan", "task_id": value},
            {"task_type": "cluster_scan", "task_name": value},
            {"task_type": "cluster_scan", "sort_key": value},
        ):
            answer = post_json(http, "/v5/acme/common/tasks/batch-query", body)
            assert answer.status_code < 500, answer.text
            assert HIDDEN not in answer.text
        if value in IN_URLS:
            answer = http.post(
                f"/v5/{quote(value, safe='')}/common/tasks/batch-query",
                json={"task_type": "cluster_scan"},
            )
            assert answer.status_code < 500, answer.text


@pytest.mark.usefixtures("untouched")
def test_sql_metacharacters_in_tencent_job_ids_are_refused_or_harmless(
    served: Served, tencent_credential: tuple[str, str]
) -> None:
    from tencentcloud.ciam.v20220331 import ciam_client, models  # type: ignore[import-untyped]
    from tencentcloud.common.credential import Credential  # type: ignore[import-untyped]
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import (  # type: ignore[import-untyped]
        TencentCloudSDKException,
    )
    from tencentcloud.common.profile.client_profile import ClientProfile  # type: ignore[import-untyped]
    from tencentcloud.common.profile.http_profile import HttpProfile  # type: ignore[import-untyped]

    secret_id, secret_key = tencent_credential
    profile = ClientProfile(
        httpProfile=HttpProfile(endpoint=served.url.removeprefix("http://"), protocol="http")
    )
    client = ciam_client.CiamClient(Credential(secret_id, secret_key), "ap-guangzhou", profile)
    for value in SQL_METACHARACTERS:
        request = models.ListJobsRequest()
        request.UserStoreId = value
        request.JobIds = [value, JOB]
        try:
            answer = client.ListJobs(request)
        except TencentCloudSDKException as refused:
            assert refused.get_code().startswith(("InvalidParameter", "ResourceNotFound")), refused
        else:
            assert all(job.Id != HIDDEN for job in answer.JobSet or [])
