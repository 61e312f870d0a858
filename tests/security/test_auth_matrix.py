"""Who gets in: every native endpoint x {no token, bad token, wrong role, other tenant, right
tenant} against a served process, answered 401/401/403/404/2xx as documented, and no answer
ever carries another tenant's data."""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ledger.tokens import TokenStore
from tests.e2e.processes import Served
from tests.reliability.harness import ADMIN_TOKEN, Cluster, bearer

pytestmark = pytest.mark.reliability

ACME_MARK = "acme-private-7c1f"
OTHER_MARK = "other-private-93ab"
"""In each tenant's job ids, names, parameters, labels and steps: a body that holds one
was given that tenant's data."""

Request = tuple[str, str, dict[str, Any] | None]
"""method, path (with query), JSON body."""


@dataclass(frozen=True)
class Endpoint:
    """One operation of the native API, and how to make a request to it that succeeds."""

    method: str
    path: str
    """As the OpenAPI document spells it."""
    writes: bool
    per_job: bool
    """Names one job: another tenant's job is 404. Otherwise it lists or creates."""
    request: Callable[[Callable[[], str]], Request]
    """Given a maker of fresh jobs of tenant acme, a request that should succeed."""
    success: int


def _events(new_job: Callable[[], str]) -> Request:
    return "POST", f"/api/v1/jobs/{new_job()}/events", {"type": "started"}


ENDPOINTS = [
    Endpoint("GET", "/api/v1/jobs", False, False, lambda j: ("GET", "/api/v1/jobs", None), 200),
    Endpoint("GET", "/api/v1/jobs/running", False, False,
             lambda j: ("GET", "/api/v1/jobs/running", None), 200),
    Endpoint("GET", "/api/v1/stats", False, False,
             lambda j: ("GET", "/api/v1/stats?group_by=status,tenant", None), 200),
    Endpoint("GET", "/api/v1/jobs/{job_id}", False, True,
             lambda j: ("GET", f"/api/v1/jobs/{j()}", None), 200),
    Endpoint("GET", "/api/v1/jobs/{job_id}/progress", False, True,
             lambda j: ("GET", f"/api/v1/jobs/{j()}/progress", None), 200),
    Endpoint("POST", "/api/v1/jobs", True, False,
             lambda j: ("POST", "/api/v1/jobs", {"job_type": "matrix"}), 201),
    Endpoint("POST", "/api/v1/jobs/{job_id}/events", True, True, _events, 201),
    Endpoint("DELETE", "/api/v1/jobs/{job_id}", True, True,
             lambda j: ("DELETE", f"/api/v1/jobs/{j()}", None), 204),
    Endpoint("POST", "/api/v1/events/batch", True, False,
             lambda j: ("POST", "/api/v1/events/batch",
                        {"events": [{"job_id": j(), "type": "started"}]}), 200),
]  # fmt: skip


@dataclass
class World:
    served: Served
    cluster: Cluster
    tokens: dict[str, str]
    """acme-<role>, other-<role>, and `revoked` (of acme, revoked)."""
    counter: Iterator[int]

    def client(self, token: str | None) -> httpx.Client:
        headers = bearer(token) if token is not None else {}
        return httpx.Client(base_url=self.served.url, headers=headers, timeout=20)

    def new_job(self, tenant: str = "acme") -> str:
        """A fresh job of `tenant` carrying its mark, visible to reads."""
        mark = ACME_MARK if tenant == "acme" else OTHER_MARK
        job_id = f"{tenant}-job-{next(self.counter)}"
        body = {"id": job_id, "job_type": "matrix", "name": mark, "parameters": {"m": mark},
                "labels": {"m": mark}}  # fmt: skip
        with self.client(self.tokens[f"{tenant}-writer"]) as http:
            created = http.post("/api/v1/jobs", json=body)
            assert created.status_code == 201, created.text
            http.get(f"/api/v1/jobs/{job_id}", params={"min_position": created.json()["position"]})
        return job_id


@pytest.fixture(scope="module")
def world(module_cluster: Cluster) -> World:
    served = module_cluster.serve()
    store = TokenStore(module_cluster.settings)
    tokens = {
        f"{tenant}-{role}": store.create(tenant, role, label="matrix")[1]
        for tenant, role in itertools.product(("acme", "other"), ROLES)
    }
    revoked_id, tokens["revoked"] = store.create("acme", "admin")
    store.revoke(revoked_id)
    world = World(served, module_cluster, tokens, itertools.count())
    # Both tenants have jobs that run, so lists, the running set and stats have data to leak.
    for tenant in ("acme", "other"):
        job_id = world.new_job(tenant)
        with world.client(tokens[f"{tenant}-writer"]) as http:
            started = http.post(f"/api/v1/jobs/{job_id}/events", json={"type": "started"})
            step = ACME_MARK if tenant == "acme" else OTHER_MARK
            progressed = http.post(
                f"/api/v1/jobs/{job_id}/events",
                json={"type": "progress", "progress": 5, "current_step": step},
            )
            assert started.status_code == progressed.status_code == 201
    module_cluster.wait_projected(served.url)
    return world


def send(world: World, token: str | None, request: Request, **headers: str) -> httpx.Response:
    method, path, body = request
    with world.client(token) as http:
        answer = http.request(method, path, json=body, headers=headers)
    assert answer.status_code < 500, answer.text
    return answer


def assert_problem(answer: httpx.Response, status: int) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert ACME_MARK not in answer.text and OTHER_MARK not in answer.text
    assert "other-job-" not in answer.text


ROLES = ("admin", "writer", "reader", "auditor")
ACME_JOB = re.compile(r"acme-job-\d+")
BAD_TOKENS = {
    "malformed": "not-a-token",
    "unknown id": "ltk_tok_0000000000000000.c2VjcmV0",
    "over long": "ltk_" + "a" * 300 + ".b",
    "admin's, one character off": ADMIN_TOKEN[:-1] + "x",
}


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_no_token_or_a_bad_one_is_401(world: World, endpoint: Endpoint) -> None:
    request = endpoint.request(world.new_job)
    answer = send(world, None, request)
    assert_problem(answer, 401)
    assert answer.headers["www-authenticate"].startswith("Bearer")
    wrong_secret = world.tokens["acme-admin"].rpartition(".")[0] + "." + secrets.token_urlsafe(32)
    for token in [*BAD_TOKENS.values(), wrong_secret, world.tokens["revoked"]]:
        assert_problem(send(world, token, request), 401)
    with world.client(None) as http:
        method, path, body = request
        for header in ("Basic YWRtaW46YWRtaW4=", "Bearer", f"Token {world.tokens['acme-admin']}"):
            answer = http.request(method, path, json=body, headers={"Authorization": header})
            assert_problem(answer, 401)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
@pytest.mark.parametrize("role", ["reader", "auditor"])
def test_a_role_that_may_not_write_is_403(world: World, endpoint: Endpoint, role: str) -> None:
    answer = send(world, world.tokens[f"acme-{role}"], endpoint.request(world.new_job))
    if endpoint.writes:
        assert_problem(answer, 403)
    else:  # every role reads its tenant's jobs and stats
        assert answer.status_code == endpoint.success, answer.text


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
@pytest.mark.parametrize("role", ["admin", "writer", "reader"])
def test_another_tenants_token_gets_404_or_only_its_own(
    world: World, endpoint: Endpoint, role: str
) -> None:
    token = world.tokens[f"other-{role}"]
    request = endpoint.request(world.new_job)
    answer = send(world, token, request)
    assert ACME_MARK not in answer.text
    # The only acme job an answer may name is the one the request named itself.
    assert set(ACME_JOB.findall(answer.text)) <= set(ACME_JOB.findall(str(request)))
    if endpoint.per_job:
        # acme's job, seen from tenant other: it does not exist (404, never 403).
        expected = 403 if endpoint.writes and role == "reader" else 404
        assert_problem(answer, expected)
    elif endpoint.writes:
        # Naming acme from tenant other is refused; unnamed, it writes only other's own.
        method, path, body = request
        named = send(world, token, (method, f"{path}?tenant=acme", body))
        assert_problem(named, 403)
        if endpoint.method == "POST" and endpoint.path == "/api/v1/jobs":
            in_body = send(world, token, (method, path, {**(body or {}), "tenant": "acme"}))
            assert_problem(in_body, 403)
    else:
        assert answer.status_code == 200, answer.text
        method, path, _ = request
        named = send(
            world, token, (method, f"{path}{'&' if '?' in path else '?'}tenant=acme", None)
        )
        assert_problem(named, 403)


ALLOWED = [
    pytest.param(endpoint, role, id=f"{role}-{endpoint.method} {endpoint.path}")
    for endpoint in ENDPOINTS
    for role in ROLES
    if not endpoint.writes or role in ("admin", "writer")  # the 403 test has the others
]


@pytest.mark.parametrize(("endpoint", "role"), ALLOWED)
def test_the_right_tenant_gets_2xx_and_only_its_own_data(
    world: World, endpoint: Endpoint, role: str
) -> None:
    answer = send(world, world.tokens[f"acme-{role}"], endpoint.request(world.new_job))
    assert answer.status_code == endpoint.success, answer.text
    assert OTHER_MARK not in answer.text
    assert "other-job-" not in answer.text
    if not endpoint.writes and endpoint.path != "/api/v1/stats":
        assert ACME_JOB.search(answer.text)  # the reads do return the tenant's own jobs


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_a_global_admin_names_the_tenant(world: World, endpoint: Endpoint) -> None:
    method, path, body = endpoint.request(world.new_job)
    if endpoint.method == "POST" and endpoint.path == "/api/v1/jobs":
        body = {**(body or {}), "tenant": "acme"}
    else:
        path += ("&" if "?" in path else "?") + "tenant=acme"
    answer = send(world, ADMIN_TOKEN, (method, path, body))
    assert answer.status_code == endpoint.success, answer.text
    assert OTHER_MARK not in answer.text and "other-job-" not in answer.text


def test_every_native_operation_is_in_the_matrix_and_documents_its_answers(world: World) -> None:
    document = httpx.get(f"{world.served.url}/schema/openapi.json", timeout=10).json()
    native = {
        (method.upper(), path): operation
        for path, operations in document["paths"].items()
        if path.startswith("/api/v1/")
        for method, operation in operations.items()
    }
    covered = {(e.method, e.path) for e in ENDPOINTS}
    for endpoint in ENDPOINTS:
        documented = set(native[(endpoint.method, endpoint.path)]["responses"])
        expected = {str(endpoint.success), "401", "403"} | ({"404"} if endpoint.per_job else set())
        assert expected <= documented, (endpoint.path, documented)
    # Operations added later (history, feed) are held at least to 401 without a token.
    for method, path in set(native) - covered:
        concrete = path.replace("{job_id}", "acme-job-0")
        with world.client(None) as http:
            assert_problem(http.request(method, concrete), 401)


def test_a_revoked_token_stops_at_once(world: World) -> None:
    token_id, token = TokenStore(world.cluster.settings).create("acme", "writer")
    with world.client(token) as http:
        assert http.get("/api/v1/jobs").status_code == 200
        world.cluster.ledger.check("tokens", "revoke", token_id)
        assert_problem(http.get("/api/v1/jobs"), 401)
        assert_problem(http.post("/api/v1/jobs", json={"job_type": "late"}), 401)


def test_the_servers_log_names_tokens_but_never_their_secrets(world: World) -> None:
    log = world.served.output()
    assert "token refused: id=" in log  # the wrong secrets above, by id
    for token in world.tokens.values():
        assert token.rpartition(".")[2] not in log
