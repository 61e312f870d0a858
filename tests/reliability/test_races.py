"""50 concurrent writers on 10 jobs, through two `ledger serve` processes, with and without
If-Match: every job's history is a path of the state machine, versions are gap-free, every
answer matches the log, and the projection equals the replay."""

from __future__ import annotations

import random
import threading
from typing import Any

import httpx
import pytest

from ledger.application import JobLedger
from ledger.domain import ALLOWED, JobStatus, stream_id
from ledger.persistence import persistence_env
from ledger.tokens import TokenStore
from tests.property.replay import assert_projections_match_replay
from tests.reliability.harness import Cluster, assert_streams_gap_free, bearer

pytestmark = pytest.mark.reliability

JOBS = [f"race-{n}" for n in range(10)]
WRITERS = 50
WRITES_EACH = 12
MAX_ATTEMPTS = 4
STATUS_AFTER = {
    "Created": JobStatus.PENDING,
    "Started": JobStatus.RUNNING,
    "Progressed": JobStatus.RUNNING,
    "Succeeded": JobStatus.COMPLETED,
    "Failed": JobStatus.FAILED,
    "Cancelled": JobStatus.CANCELLED,
    "Deleted": JobStatus.DELETED,
}
BODIES: list[dict[str, Any]] = [
    {"type": "started"},
    {"type": "progress", "progress": 30},
    {"type": "progress", "progress": 60, "records_processed": 3},
    {"type": "failed", "error_message": "boom"},
    {"type": "succeeded"},
    {"type": "cancelled", "reason": "race"},
    {"type": "deleted"},
]
WEIGHTS = [30, 30, 30, 12, 2, 1, 0.5]
"""Mostly moves that keep a job alive, so races go on all through the run."""
REFUSALS = {409, 410, 412}
"""A lost race or a transition the job no longer allows: refused, nothing written."""


def assert_valid_path(stream: str, topics: list[str]) -> None:
    """The statuses the events lead through follow ALLOWED from `pending`."""
    assert topics[0] == "Created", stream
    status, starts = JobStatus.PENDING, 0
    for topic in topics[1:]:
        target = STATUS_AFTER[topic]
        assert target in ALLOWED[status], f"{stream}: {status} -> {target} in {topics}"
        if topic == "Started":
            assert status is not JobStatus.RUNNING, f"{stream}: started twice in {topics}"
            starts += 1
        if topic == "Progressed":
            assert status is JobStatus.RUNNING, f"{stream}: progress while {status}"
        status = target
    assert starts <= MAX_ATTEMPTS, f"{stream}: {starts} attempts of {MAX_ATTEMPTS}"


def test_fifty_writers_on_ten_jobs_leave_valid_gap_free_histories(cluster: Cluster) -> None:
    _, token = TokenStore(cluster.settings).create("acme", "writer")
    servers = [cluster.serve(), cluster.serve()]
    with httpx.Client(base_url=servers[0].url, headers=bearer(token), timeout=30) as http:
        for job_id in JOBS:
            body = {"id": job_id, "job_type": "race", "max_attempts": MAX_ATTEMPTS}
            assert http.post("/api/v1/jobs", json=body).status_code == 201
    accepted: list[tuple[str, int, int, str, int | None]] = []
    unexpected: list[str] = []
    gate = threading.Barrier(WRITERS)

    def write(number: int) -> None:
        rng = random.Random(number)
        conditional = number % 2 == 0
        url = servers[number % 2].url
        with httpx.Client(base_url=url, headers=bearer(token), timeout=30) as http:
            gate.wait()
            for _ in range(WRITES_EACH):
                job_id = rng.choice(JOBS)
                (body,) = rng.choices(BODIES, WEIGHTS)
                headers, expected = {}, None
                if conditional:
                    current = http.get(f"/api/v1/jobs/{job_id}")
                    if current.status_code == 410:
                        continue
                    headers["If-Match"] = current.headers["etag"]
                    expected = int(current.headers["etag"].strip('"'))
                answer = http.post(f"/api/v1/jobs/{job_id}/events", json=body, headers=headers)
                if answer.status_code == 201:
                    got = answer.json()
                    accepted.append(
                        (job_id, got["version"], got["position"], got["status"], expected)
                    )
                elif answer.status_code not in REFUSALS:
                    unexpected.append(f"{answer.status_code} {answer.text[:200]}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive()
    assert unexpected == []

    events = cluster.events()
    topics = assert_streams_gap_free(events)
    assert set(topics) == {stream_id("acme", j) for j in JOBS}
    for stream, path in topics.items():
        assert_valid_path(stream, path)
    # Every 201 names the event that holds its write, and an If-Match write landed on
    # exactly the version it named.
    at = {(e["stream"], e["version"]): e for e in events}
    for job_id, version, position, status, expected in accepted:
        event = at[(stream_id("acme", job_id), version)]
        assert event["position"] == position
        assert STATUS_AFTER[event["topic"].rsplit(".", 1)[-1]].value == status
        assert expected is None or version == expected + 1
    assert len(accepted) == len(events) - len(JOBS)
    conditional_wins = sum(1 for a in accepted if a[4] is not None)
    assert 0 < conditional_wins < len(accepted)

    cluster.wait_projected(servers[0].url)
    ledger = JobLedger(env=persistence_env(cluster.settings))
    try:
        assert_projections_match_replay(cluster.settings, ledger)
    finally:
        ledger.close()
    tried = WRITERS * WRITES_EACH
    print(f"{len(accepted)} of {tried} writes accepted, {conditional_wins} with If-Match")
