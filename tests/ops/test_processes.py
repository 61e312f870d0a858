"""`ledger serve` and `ledger config` as real processes: JSON access logs, metrics, config."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.e2e.processes import Ledger

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "ops-admin-token-" + secrets.token_hex(8)


def environment(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(values)
    return env


@pytest.fixture
def external(database_url: str, tmp_path: Path) -> Iterator[Ledger]:
    """`ledger` on the run's PostgreSQL, in a schema of the test's own, logging JSON."""
    schema = f"ops_{secrets.token_hex(6)}"
    ledger = Ledger(
        env=environment(
            LEDGER_DATABASE_URL=database_url,
            LEDGER_DATABASE_SCHEMA=schema,
            LEDGER_ADMIN_TOKEN=ADMIN_TOKEN,
            LEDGER_LOG_FORMAT="json",
            LEDGER_POLL_INTERVAL="0.2",
        ),
        cwd=tmp_path,
    )
    try:
        yield ledger
    finally:
        ledger.close()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_serve_logs_one_json_line_per_request_and_serves_metrics(external: Ledger) -> None:
    served = external.serve()
    served.wait_ready()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Request-ID": "req-ops-1"}
    created = httpx.post(
        f"{served.url}/api/v1/jobs",
        json={"job_type": "export", "tenant": "acme", "id": "job-1"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    metrics = httpx.get(f"{served.url}/metrics")
    assert metrics.status_code == 200
    assert 'route="/api/v1/jobs",status="201"' in metrics.text
    assert served.stop() == 0

    lines = [json.loads(line) for line in served.output().splitlines() if line.startswith("{")]
    (access,) = [line for line in lines if line.get("request_id") == "req-ops-1"]
    assert access["logger"] == "api.access" and access["level"] == "INFO"
    assert (access["method"], access["route"], access["status"]) == ("POST", "/api/v1/jobs", 201)
    assert access["tenant"] == "*" and access["duration_ms"] >= 0
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]  # one line each
    assert any(line.get("route") == "/metrics" for line in lines)
    assert ADMIN_TOKEN not in served.output()


def test_config_prints_the_settings_with_secrets_masked(external: Ledger) -> None:
    external.env["LEDGER_DATABASE_URL"] = "postgresql://ledger:pw-123-secret@db.internal:5432/l"
    external.env["LEDGER_SECRET_KEY"] = "key-456-secret"
    output = external.check("config")
    lines = {line.split()[0]: line for line in output.splitlines()}
    assert "postgresql://ledger:***@db.internal:5432/l" in lines["LEDGER_DATABASE_URL"]
    assert lines["LEDGER_LOG_FORMAT"].split()[1:] == ["json", "(env)"]
    assert lines["LEDGER_PORT"].split()[1:] == ["8000", "(default)"]
    for secret in ("pw-123-secret", "key-456-secret", ADMIN_TOKEN):
        assert secret not in output
