"""Two `ledger serve` processes on one database: one runs the projections, the other takes
over within 5 s of its death, and the read models stay exact."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from ledger.application import JobLedger
from ledger.domain import stream_id
from ledger.persistence import persistence_env
from ledger.tokens import TokenStore
from projections.runner import LOCK_CLASS
from tests.e2e.processes import Served
from tests.property.replay import assert_projections_match_replay
from tests.reliability.harness import Cluster, assert_streams_gap_free, bearer, wait_until
from tests.reliability.writers import Writers

pytestmark = pytest.mark.reliability

LEADING = "projections: this process runs them"
STANDING_BY = "projections: another process runs them"
TAKEOVER_LIMIT = 5.0


def lock_holders(cluster: Cluster) -> int:
    """Backends holding the projections' advisory lock for the cluster's schema."""
    with cluster.connect() as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = %s AND objid = hashtext(%s)::oid AND objsubid = 2",
            (LOCK_CLASS, cluster.settings.database_schema),
        ).fetchone()
    assert row is not None
    return int(row["n"])


def leader_of(servers: list[Served]) -> tuple[Served, Served]:
    """(the server that runs the projections, the one standing by), from their logs."""
    wait_until(lambda: all(LEADING in s.output() or STANDING_BY in s.output() for s in servers), 30)
    leading = [s for s in servers if LEADING in s.output()]
    assert len(leading) == 1, [s.output() for s in servers]
    (leader,) = leading
    (follower,) = [s for s in servers if s is not leader]
    assert STANDING_BY in follower.output() and LEADING not in follower.output()
    return leader, follower


def test_one_of_two_servers_projects_and_the_other_takes_over(cluster: Cluster) -> None:
    _, token = TokenStore(cluster.settings).create("acme", "writer")
    # The default poll interval: the takeover time measured is the one deployments get.
    servers = [cluster.serve(LEDGER_POLL_INTERVAL="1"), cluster.serve()]
    leader, follower = leader_of(servers)
    assert lock_holders(cluster) == 1

    writers = [
        Writers(leader.url, token, count=4, prefix="leader"),
        Writers(follower.url, token, count=4, prefix="follower"),
    ]
    for group in writers:
        group.start()
    wait_until(lambda: sum(len(w.acked) for w in writers) >= 200, timeout=60)
    # Writes through the follower are projected by the leader, and the follower reads them.
    cluster.wait_projected(follower.url)

    leader.process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    leader.process.wait(10)
    writers[0].join()
    wait_until(lambda: LEADING in follower.output(), TAKEOVER_LIMIT, 0.02)
    took_over = time.monotonic() - killed
    # A write after the takeover is projected by the survivor well within the limit.
    with httpx.Client(base_url=follower.url, headers=bearer(token), timeout=10) as http:
        created = http.post("/api/v1/jobs", json={"id": "after-kill", "job_type": "replica"})
        assert created.status_code == 201, created.text
        seen = http.get(
            "/api/v1/jobs/after-kill", params={"min_position": created.json()["position"]}
        )
        assert seen.status_code == 200, seen.text
    projected_after = time.monotonic() - killed
    assert projected_after < TAKEOVER_LIMIT + 1
    assert lock_holders(cluster) == 1

    wait_until(lambda: len(writers[1].acked) >= 100, timeout=60)
    writers[1].join()
    assert writers[0].unexpected == writers[1].unexpected == []
    events = {(e["stream"], e["version"]): e["position"] for e in cluster.events()}
    for write in writers[0].acked + writers[1].acked:
        assert events[(stream_id("acme", write.job_id), write.version)] == write.position
    assert_streams_gap_free(cluster.events())
    cluster.wait_projected(follower.url)
    ledger = JobLedger(env=persistence_env(cluster.settings))
    try:
        assert_projections_match_replay(cluster.settings, ledger)
    finally:
        ledger.close()
    print(f"took over {took_over:.2f} s after kill -9, a new write read {projected_after:.2f} s")
