"""kill -9 of `ledger serve` while 8 clients write: nothing acknowledged is lost, nothing
is applied twice, and the read models equal a fresh replay after a restart."""

from __future__ import annotations

import signal

import httpx
import pytest

from ledger.application import JobLedger
from ledger.domain import stream_id
from ledger.persistence import persistence_env
from ledger.tokens import TokenStore
from tests.property.replay import assert_projections_match_replay
from tests.reliability.harness import Cluster, assert_streams_gap_free, bearer, wait_until
from tests.reliability.writers import Writers, lifecycle

pytestmark = pytest.mark.reliability


def test_kill_9_while_eight_clients_write_loses_no_acknowledged_write(cluster: Cluster) -> None:
    _, token = TokenStore(cluster.settings).create("acme", "writer")
    first = cluster.serve()
    writers = Writers(first.url, token, count=8, prefix="crash")
    writers.start()
    wait_until(lambda: len(writers.acked) >= 200, timeout=60)

    first.process.send_signal(signal.SIGKILL)
    assert first.process.wait(10) == -signal.SIGKILL
    writers.join()
    assert writers.unexpected == []
    acked = list(writers.acked)

    second = cluster.serve()
    # Every acknowledged write is in the log, at the version and position it was answered.
    events = {(e["stream"], e["version"]): e["position"] for e in cluster.events()}
    for write in acked:
        assert events.get((stream_id("acme", write.job_id), write.version)) == write.position

    # The writes cut off by the kill are retried with their keys: each is applied once,
    # whether or not it had committed before the process died.
    replayed = 0
    versions = {w.job_id: w.version for w in acked}
    with httpx.Client(base_url=second.url, headers=bearer(token), timeout=20) as http:
        for cut in writers.pending:
            retry = http.post(cut.path, json=cut.body, headers={"Idempotency-Key": cut.key})
            assert retry.status_code in (200, 201), retry.text
            replayed += retry.headers.get("idempotent-replayed") == "true"
            job_id, step = cut.key.split("/")
            versions[job_id] = max(versions.get(job_id, 0), int(step) + 1)
    topics = assert_streams_gap_free(cluster.events())
    assert {s for s in topics} == {stream_id("acme", j) for j in versions}
    for job_id, version in versions.items():
        assert len(topics[stream_id("acme", job_id)]) == version <= len(lifecycle(job_id))
    in_flight = len(writers.pending)
    print(f"acked {len(acked)}, in flight at the kill {in_flight} ({replayed} had committed)")

    cluster.wait_projected(second.url)
    ledger = JobLedger(env=persistence_env(cluster.settings))
    try:
        assert_projections_match_replay(cluster.settings, ledger)
    finally:
        ledger.close()
