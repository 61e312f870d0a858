"""An auditor's session against `ledger serve` as a real process: a token from the command
line, the live feed over HTTP while jobs are written, time travel, and `ledger verify` and
`ledger replay` beside the running server."""

from __future__ import annotations

import json
import threading

import httpx

from ledger.settings import Settings
from tests.audit.conftest import Commands


def test_an_auditor_tails_the_feed_travels_in_time_and_verifies_beside_a_running_server(
    settings: Settings, cli: Commands
) -> None:
    served = cli.serve()
    served.wait_ready()
    writer = {"Authorization": f"Bearer {_token(cli, 'writer')}"}
    auditor = {"Authorization": f"Bearer {_token(cli, 'auditor')}"}
    api = httpx.Client(base_url=served.url, timeout=10)
    positions: list[int] = []

    def write() -> None:
        for n in range(5):
            job = api.post("/api/v1/jobs", json={"id": f"j{n}", "job_type": "x"}, headers=writer)
            positions.append(job.json()["position"])
            for kind in ("started", "succeeded"):
                answer = api.post(f"/api/v1/jobs/j{n}/events", json={"type": kind}, headers=writer)
                positions.append(answer.json()["position"])

    writing = threading.Thread(target=write)
    seen: list[int] = []
    with api.stream(
        "GET", "/api/v1/events", headers={**auditor, "Accept": "text/event-stream"}
    ) as feed:
        writing.start()
        for line in feed.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line.removeprefix("data: "))["position"])
                if len(seen) == 15:
                    break
    writing.join()

    assert seen == positions
    history = api.get("/api/v1/jobs/j0/events", headers=auditor).json()["events"]
    then = api.get(
        "/api/v1/jobs/j0", params={"as_of": history[1]["occurred_at"]}, headers=auditor
    ).json()
    assert then["status"] == "running" and then["version"] == 2
    running_then = api.get(
        "/api/v1/jobs", params={"as_of": history[1]["occurred_at"], "status": "running",
                                "min_position": positions[-1]}, headers=auditor,
    ).json()  # fmt: skip
    assert [j["id"] for j in running_then["jobs"]] == ["j0"]
    verified = cli.check("verify")
    assert "ok: 15 events of 5 jobs verified" in verified
    replayed = cli.check("replay", "acme/j0")
    assert replayed.splitlines()[-1] == "acme/j0: completed, version 3, progress 100, attempt 1/1"
    api.close()


def _token(cli: Commands, role: str) -> str:
    return cli.check("tokens", "create", "--tenant", "acme", "--role", role).splitlines()[-1]
