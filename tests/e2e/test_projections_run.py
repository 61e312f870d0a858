"""`ledger projections run` as its own process, beside a `ledger serve` that does not project."""

from __future__ import annotations

import httpx

from tests.e2e.processes import START_TIMEOUT, Ledger, postgres_processes


def test_reads_catch_up_once_a_separate_runner_projects(embedded: Ledger) -> None:
    pgdata = (embedded.cwd / "data" / "pgdata").resolve()
    embedded.env["LEDGER_RUN_PROJECTIONS"] = "false"
    embedded.env["LEDGER_MIN_POSITION_TIMEOUT"] = "0.5"
    served = embedded.serve()
    served.wait_ready()
    token = embedded.check("tokens", "create", "--tenant", "acme", "--role", "writer")
    api = httpx.Client(
        base_url=f"{served.url}/api/v1",
        headers={"Authorization": f"Bearer {token.splitlines()[-1]}"},
        timeout=15,
    )

    created = api.post("/jobs", json={"id": "job-1", "job_type": "sync"})
    assert created.status_code == 201, created.text
    after_write = {"min_position": created.json()["position"]}
    # Nothing projects yet: a read that must see the write gives up after the timeout.
    waited = api.get("/jobs/job-1", params=after_write)
    assert waited.status_code == 503, waited.text
    assert "retry-after" in waited.headers

    runner = embedded.start("projections", "run")
    assert runner.first_line() == (
        f"ledger: running projections (database: embedded PostgreSQL, data in {pgdata})"
    )
    for _ in range(START_TIMEOUT * 2):  # each try waits up to 0.5 s
        seen = api.get("/jobs/job-1", params=after_write)
        if seen.status_code != 503:
            break
    assert seen.status_code == 200, seen.text
    assert seen.json()["status"] == "pending"

    assert runner.stop() == 0
    assert served.stop() == 0
    assert postgres_processes(pgdata) == []
