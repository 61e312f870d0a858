"""A client that retries with the same Idempotency-Key after a timeout or a lost answer never
creates a second event, even when the first attempt committed and only its answer was lost."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ledger.domain import stream_id
from ledger.tokens import TokenStore
from tests.e2e.processes import Served
from tests.reliability.harness import Cluster, bearer
from tests.reliability.proxy import Proxy

pytestmark = pytest.mark.reliability

Write = tuple[str, str, dict[str, Any] | None]


@pytest.fixture(scope="module")
def served(module_cluster: Cluster) -> Served:
    return module_cluster.serve()


@pytest.fixture(scope="module")
def token(module_cluster: Cluster) -> str:
    return TokenStore(module_cluster.settings).create("acme", "writer")[1]


@pytest.fixture
def api(served: Served, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, headers=bearer(token), timeout=10) as client:
        yield client


def writes(job_id: str) -> dict[str, Write]:
    """One write of each kind, for a job that exists and is pending (`create` makes it)."""
    return {
        "create": ("POST", "/api/v1/jobs", {"id": job_id, "job_type": "retry"}),
        "event": ("POST", f"/api/v1/jobs/{job_id}/events", {"type": "started"}),
        "batch": (
            "POST",
            "/api/v1/events/batch",
            {"events": [{"job_id": job_id, "type": "started"}]},
        ),
        "cancel": ("DELETE", f"/api/v1/jobs/{job_id}", None),
    }


def stream_length(cluster: Cluster, job_id: str) -> int:
    with cluster.connect() as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM ledger_events WHERE originator_id = %s",
            (stream_id("acme", job_id),),
        ).fetchone()
    assert row is not None
    return int(row["n"])


def body_of(raw: bytes) -> bytes:
    return raw.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("kind", ["create", "event", "batch", "cancel"])
@pytest.mark.parametrize("loss", ["drop", "delay:2"])
def test_a_retry_after_a_lost_answer_replays_it_and_writes_once(
    module_cluster: Cluster, served: Served, api: httpx.Client, token: str, kind: str, loss: str
) -> None:
    job_id = f"retry-{kind}-{loss.replace(':', '')}"
    if kind != "create":
        assert api.post("/api/v1/jobs", json={"id": job_id, "job_type": "retry"}).is_success
    before = stream_length(module_cluster, job_id)
    method, path, body = writes(job_id)[kind]
    key = {"Idempotency-Key": f"key-{job_id}"}
    proxy = Proxy(served.url, plan=[loss])
    try:
        with httpx.Client(base_url=proxy.url, headers=bearer(token), timeout=0.5) as lossy:
            with pytest.raises(httpx.TransportError):  # no answer: the client can't tell
                lossy.request(method, path, json=body, headers=key)
            retried = lossy.request(method, path, json=body, headers=key)
            again = lossy.request(method, path, json=body, headers=key)
    finally:
        proxy.close()

    (lost,) = proxy.lost
    assert lost.startswith(b"HTTP/1.1 20"), lost  # the first attempt had committed
    assert retried.is_success and again.is_success
    assert retried.headers["idempotent-replayed"] == "true"
    assert retried.content == again.content == body_of(lost)
    assert stream_length(module_cluster, job_id) == before + 1


def test_the_same_key_sent_eight_times_at_once_writes_once(
    module_cluster: Cluster, served: Served, api: httpx.Client, token: str
) -> None:
    job_id = "retry-concurrent"
    assert api.post("/api/v1/jobs", json={"id": job_id, "job_type": "retry"}).is_success
    assert api.post(f"/api/v1/jobs/{job_id}/events", json={"type": "started"}).is_success
    answers: list[httpx.Response] = []
    gate = threading.Barrier(8)

    def send() -> None:
        with httpx.Client(base_url=served.url, headers=bearer(token), timeout=10) as client:
            gate.wait()
            answers.append(
                client.post(
                    f"/api/v1/jobs/{job_id}/events",
                    json={"type": "progress", "progress": 7},
                    headers={"Idempotency-Key": "one-key-for-all"},
                )
            )

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == 8
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.content for a in answers}) == 1
    assert stream_length(module_cluster, job_id) == 3  # created, started, one progress
