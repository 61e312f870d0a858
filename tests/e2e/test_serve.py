"""`ledger serve` as a real process on the embedded default: the README's walkthrough over HTTP,
a restart on the same data, and nothing left running afterwards."""

from __future__ import annotations

import signal
from typing import Any

import httpx

from tests.e2e.conftest import ADMIN_TOKEN
from tests.e2e.processes import Ledger, Served, postgres_processes

JOB = "job-e2e-1"
OTHER = "job-e2e-2"


class Api:
    """A bearer-token client of one running server."""

    def __init__(self, served: Served, token: str) -> None:
        self.client = httpx.Client(
            base_url=f"{served.url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=15,
        )

    def post(self, path: str, body: dict[str, Any], expect: int = 201) -> dict[str, Any]:
        response = self.client.post(path, json=body)
        assert response.status_code == expect, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def get(self, path: str, **params: str | int) -> dict[str, Any]:
        response = self.client.get(path, params=params)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def event(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.post(f"/jobs/{job_id}/events", body)


def _token(ledger: Ledger, *args: str) -> tuple[str, str]:
    lines = ledger.check("tokens", "create", *args).splitlines()
    return lines[0].removeprefix("id="), lines[-1]


def _walkthrough(api: Api) -> int:
    """The README's walkthrough; returns the position of the last write."""
    created = api.post(
        "/jobs", {"id": JOB, "job_type": "import", "name": "nightly import", "total_records": 200}
    )
    assert (created["id"], created["status"], created["version"]) == (JOB, "pending", 1)

    assert api.event(JOB, {"type": "started"})["status"] == "running"
    progressed = api.event(
        JOB, {"type": "progress", "progress": 50, "records_processed": 100, "current_step": "load"}
    )
    assert (progressed["status"], progressed["version"]) == ("running", 3)
    succeeded = api.event(JOB, {"type": "succeeded", "records_created": 200})
    assert succeeded["status"] == "completed"

    api.post("/jobs", {"id": OTHER, "job_type": "export"})
    started = api.event(OTHER, {"type": "started"})
    assert started["position"] > succeeded["position"]
    position: int = started["position"]
    return position


def _state(api: Api, position: int) -> dict[str, Any]:
    """Everything a reader sees once the projections have reached `position`."""
    return {
        "list": api.get("/jobs", min_position=position),
        "job": api.get(f"/jobs/{JOB}", min_position=position),
        "progress": api.get(f"/jobs/{JOB}/progress", min_position=position),
        "running": api.get("/jobs/running", min_position=position),
        "stats": api.get("/stats", min_position=position),
    }


def test_serve_walkthrough_survives_a_restart_on_the_same_data(embedded: Ledger) -> None:
    pgdata = (embedded.cwd / "data" / "pgdata").resolve()

    first = embedded.serve()
    assert first.first_line() == (
        f"ledger: serving {first.url} (database: embedded PostgreSQL, data in {pgdata})"
    )
    first.wait_ready()
    assert len(postgres_processes(pgdata)) == 1
    writer_id, writer = _token(embedded, "--tenant", "acme", "--role", "writer")
    api = Api(first, writer)
    position = _walkthrough(api)
    before = _state(api, position)

    job = before["job"]
    assert (job["status"], job["progress"], job["records_created"]) == ("completed", 100, 200)
    assert job["tenant"] == "acme"
    assert [j["id"] for j in before["list"]["jobs"]] == [OTHER, JOB]
    assert [j["id"] for j in before["running"]["jobs"]] == [OTHER]
    assert before["progress"]["status"] == "completed"
    assert before["stats"]["total"] == 2

    assert first.stop() == 0
    assert postgres_processes(pgdata) == []
    initialised = (pgdata / "PG_VERSION").stat()

    second = embedded.serve()
    assert second.first_line() == first.first_line().replace(str(first.port), str(second.port))
    second.wait_ready()
    again = Api(second, writer)

    assert _state(again, position) == before
    assert (pgdata / "PG_VERSION").stat() == initialised  # the same cluster, not a new one
    # Writes go on from where they were: the job's version continues.
    resumed = again.event(OTHER, {"type": "progress", "progress": 10})
    assert (resumed["version"], resumed["position"] > position) == (3, True)
    assert writer_id in embedded.check("tokens", "list")

    assert second.stop(signal.SIGINT) == 0  # Ctrl+C ends it as cleanly as SIGTERM
    assert postgres_processes(pgdata) == []


def test_tokens_from_the_command_line_govern_the_running_server(embedded: Ledger) -> None:
    served = embedded.serve()
    served.wait_ready()
    _, reader = _token(embedded, "--tenant", "acme", "--role", "reader")
    writer_id, writer = _token(embedded, "--tenant", "acme", "--role", "writer")

    Api(served, writer).post("/jobs", {"id": JOB, "job_type": "import"})
    refused = Api(served, reader).client.post("/jobs", json={"job_type": "import"})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    admin = Api(served, ADMIN_TOKEN).get("/jobs", tenant="acme")
    assert [j["id"] for j in admin["jobs"]] == [JOB]

    embedded.check("tokens", "revoke", writer_id)

    # Revocation is effective at once, with no restart.
    revoked = Api(served, writer).client.get("/jobs")
    assert revoked.status_code == 401
    assert Api(served, reader).client.get("/jobs").status_code == 200
    no_token = httpx.get(f"{served.url}/api/v1/jobs")
    assert no_token.status_code == 401
    assert served.stop() == 0


def test_serve_refuses_bad_configuration_with_one_line(embedded: Ledger) -> None:
    embedded.env["LEDGER_PORT"] = "eighty"

    done = embedded.run("serve")

    assert done.returncode == 2
    assert done.stderr == "ledger: error: LEDGER_PORT must be an integer, got 'eighty'\n"


def test_after_a_killed_server_the_next_command_stops_postgres_when_done(
    embedded: Ledger,
) -> None:
    pgdata = (embedded.cwd / "data" / "pgdata").resolve()
    served = embedded.serve()
    served.wait_ready()

    assert served.stop(signal.SIGKILL) == -signal.SIGKILL
    # Killed outright, it could not stop its PostgreSQL, which the next command joins.
    assert len(postgres_processes(pgdata)) == 1
    embedded.check("migrate")

    assert postgres_processes(pgdata) == []
