"""Bearer tokens, roles and tenants: 401 before 403 before anything else; tenants never meet."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ledger.settings import Settings
from ledger.tokens import Principal, Role, TokenStore
from tests.api.helpers import ADMIN, Client, Headers, assert_problem, create

TokenFor = Callable[[str | None, str], Headers]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Bearer ltk_tok_0000000000000000.wrong"},
    ],
)
async def test_no_token_or_a_bad_one_is_401(client: Client, headers: Headers) -> None:
    for response in (
        await client.get("/api/v1/jobs", headers=headers),
        await client.post("/api/v1/jobs", json={"job_type": "x"}, headers=headers),
        await client.get("/api/v1/stats", headers=headers),
    ):
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_wrong_secret_for_a_real_id_is_401(client: Client, tokens: TokenStore) -> None:
    token_id, _ = tokens.create("acme", "writer")
    forged = {"Authorization": f"Bearer ltk_{token_id}.forged"}
    assert_problem(await client.get("/api/v1/jobs", headers=forged), 401, "unauthorized")


async def test_a_revoked_token_is_refused_at_once(client: Client, tokens: TokenStore) -> None:
    token_id, token = tokens.create("acme", "writer")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.post("/api/v1/jobs", json={"job_type": "x"}, headers=headers)).is_success
    assert tokens.revoke(token_id)
    response = await client.post("/api/v1/jobs", json={"job_type": "x"}, headers=headers)
    assert_problem(response, 401, "unauthorized")
    assert not tokens.revoke(token_id)


@pytest.mark.parametrize("role", ["reader", "auditor"])
async def test_readers_and_auditors_may_not_write(
    client: Client, token_for: TokenFor, writer: Headers, role: str
) -> None:
    await create(client, writer, id="job-1")
    headers = token_for("acme", role)
    for response in (
        await client.post("/api/v1/jobs", json={"job_type": "x"}, headers=headers),
        await client.post("/api/v1/jobs/job-1/events", json={"type": "started"}, headers=headers),
        await client.post("/api/v1/events/batch", json={"events": []}, headers=headers),
        await client.delete("/api/v1/jobs/job-1", headers=headers),
    ):
        assert_problem(response, 403, "forbidden")


async def test_401_and_403_come_before_body_checks(client: Client, reader: Headers) -> None:
    bad = b"{not json"
    json_type = {"Content-Type": "application/json"}
    assert_problem(
        await client.post("/api/v1/jobs", content=bad, headers=json_type), 401, "unauthorized"
    )
    assert_problem(
        await client.post("/api/v1/jobs", content=bad, headers={**reader, **json_type}),
        403,
        "forbidden",
    )
    too_big = {"job_type": "x", "parameters": {"blob": "x" * (2 * 1024 * 1024)}}
    assert_problem(
        await client.post("/api/v1/jobs", json=too_big, headers=reader), 403, "forbidden"
    )


async def test_an_admin_token_of_a_tenant_writes_there(client: Client, token_for: TokenFor) -> None:
    admin = token_for("acme", "admin")
    job = await create(client, admin, id="job-1")
    assert job["tenant"] == "acme"


async def test_a_tenant_token_cannot_write_into_another_tenant(
    client: Client, writer: Headers, token_for: TokenFor
) -> None:
    response = await client.post(
        "/api/v1/jobs", json={"job_type": "x", "tenant": "globex"}, headers=writer
    )
    assert_problem(response, 403, "forbidden")
    same = await client.post(
        "/api/v1/jobs", json={"id": "mine", "job_type": "x", "tenant": "acme"}, headers=writer
    )
    assert same.status_code == 201


async def test_another_tenants_job_is_404_never_403(
    client: Client, writer: Headers, token_for: TokenFor
) -> None:
    globex = token_for("globex", "writer")
    await create(client, globex, id="secret")
    for response in (
        await client.post("/api/v1/jobs/secret/events", json={"type": "started"}, headers=writer),
        await client.post(
            "/api/v1/jobs/secret/events?tenant=globex", json={"type": "started"}, headers=writer
        ),
        await client.delete("/api/v1/jobs/secret", headers=writer),
    ):
        assert_problem(response, 404, "job-not-found", job_id="secret")


async def test_the_same_id_in_two_tenants_is_two_jobs(
    client: Client, writer: Headers, token_for: TokenFor
) -> None:
    globex = token_for("globex", "writer")
    mine = await create(client, writer, id="job-1", job_type="acme_type")
    theirs = await create(client, globex, id="job-1", job_type="globex_type")
    assert (mine["tenant"], theirs["tenant"]) == ("acme", "globex")
    started = await client.post(
        "/api/v1/jobs/job-1/events", json={"type": "started"}, headers=writer
    )
    assert started.status_code == 201
    again = await client.post("/api/v1/jobs/job-1/events", json={"type": "started"}, headers=globex)
    assert again.status_code == 201  # globex's job-1 was still pending


def test_token_store_round_trip(settings: Settings) -> None:
    store = TokenStore(settings)
    token_id, token = store.create("acme", Role.READER, label="dashboards")
    assert token.startswith(f"ltk_{token_id}.")
    assert store.verify(token) == Principal(token_id, "acme", Role.READER)
    assert store.verify(token + "x") is None
    assert store.verify("test-admin-token") == Principal("admin-env", None, Role.ADMIN)
    global_id, global_token = store.create(None, "admin")
    assert store.verify(global_token) == Principal(global_id, None, Role.ADMIN)
    listed = {t.id: t for t in store.list()}
    assert listed[token_id].label == "dashboards" and listed[token_id].revoked_at is None
    assert store.revoke(token_id)
    assert store.verify(token) is None
    assert {t.id: t for t in store.list()}[token_id].revoked_at is not None


def test_only_admin_tokens_may_be_global(settings: Settings) -> None:
    from ledger.errors import InvalidCommand

    with pytest.raises(InvalidCommand):
        TokenStore(settings).create(None, "writer")
    with pytest.raises(InvalidCommand):
        TokenStore(settings).create("bad tenant", "writer")


def test_only_a_hash_of_the_secret_is_stored(settings: Settings) -> None:
    import psycopg

    store = TokenStore(settings)
    token_id, token = store.create("acme", "writer")
    secret = token.partition(".")[2]
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            f'SELECT secret_hash FROM "{settings.database_schema}".api_tokens WHERE id = %s',
            (token_id,),
        ).fetchone()
    assert row is not None
    stored = bytes(row[0])
    assert secret.encode() not in stored and len(stored) == 32


async def test_the_env_admin_token_is_a_global_admin(client: Client) -> None:
    job = await create(client, ADMIN, id="job-1", tenant="acme")
    assert job["tenant"] == "acme"
