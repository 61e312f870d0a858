"""GET /metrics on a served API: requests, events, group commits, projections and pools."""

from __future__ import annotations

import time
from dataclasses import replace

import httpx
import pytest

from ledger.client import LedgerClient, NotFound
from ledger.settings import Settings
from tests.client.server import serve
from tests.ops.conftest import Scrape


def test_requests_are_counted_and_timed_by_route_and_status(
    writer: LedgerClient, scrape: Scrape
) -> None:
    writer.create_job("export", id="job-1")
    writer.get("job-1")
    writer.get("job-1")
    with pytest.raises(NotFound):
        writer.get("job-missing")
    metrics = scrape()
    route = "/api/v1/jobs/{job_id}"
    requests = "ledger_http_requests_total"
    assert metrics[(requests, (("method", "GET"), ("route", route), ("status", "200")))] == 2
    assert metrics[(requests, (("method", "GET"), ("route", route), ("status", "404")))] == 1
    assert (
        metrics[(requests, (("method", "POST"), ("route", "/api/v1/jobs"), ("status", "201")))] == 1
    )
    latency = "ledger_http_request_duration_seconds_count"
    assert metrics[(latency, (("method", "GET"), ("route", route)))] == 3
    assert metrics[(latency.replace("_count", "_sum"), (("method", "GET"), ("route", route)))] > 0
    assert not any("job-1" in str(labels) for _, labels in metrics)  # templates, not paths


def test_events_commits_projections_and_pools_are_reported(
    writer: LedgerClient, scrape: Scrape, settings: Settings
) -> None:
    scrape()  # events are counted from the first scrape on
    writer.create_job("export", id="job-1")
    writer.start("job-1")
    writer.progress("job-1", 10)
    writer.batch([{"job_id": "job-1", "type": "progress", "progress": 20}])
    writer.succeed("job-1")
    writer.get("job-1")  # waits until the projections have the last write
    metrics = scrape()

    appended = {
        dict(labels)["type"]: value
        for (name, labels), value in metrics.items()
        if name == "ledger_events_appended_total"
    }
    assert appended == {"Created": 1, "Started": 1, "Progressed": 2, "Succeeded": 1}
    assert metrics[("ledger_group_commit_events_total", ())] >= 5
    assert 1 <= metrics[("ledger_group_commit_transactions_total", ())] <= 5
    head = metrics[("ledger_log_head_position", ())]
    assert head == writer.position
    for projection in ("jobs", "running_jobs", "job_stats", "job_status_intervals"):
        labels = (("projection", projection),)
        assert metrics[("ledger_projection_position", labels)] == head
        assert metrics[("ledger_projection_lag_events", labels)] == 0
    assert metrics[("ledger_projection_lag_seconds", ())] == 0
    assert metrics[("ledger_projection_events_per_second", ())] > 0
    pool = "ledger_db_pool_connections"
    assert metrics[(pool, (("pool", "read"), ("state", "max")))] == settings.pool_max_size
    open_read = sum(metrics[(pool, (("pool", "read"), ("state", s)))] for s in ("in_use", "idle"))
    assert settings.pool_min_size <= open_read <= settings.pool_max_size
    assert (pool, (("pool", "write"), ("state", "idle"))) in metrics


def test_lag_in_events_and_seconds_grows_while_nothing_projects(
    settings: Settings, token: str
) -> None:
    with (
        serve(replace(settings, run_projections=False)) as url,
        LedgerClient(url, token, read_your_writes=False) as writer,
    ):
        writer.create_job("export", id="job-1")
        writer.start("job-1")

        def scrape() -> str:
            return httpx.get(f"{url}/metrics").text

        first = scrape()
        time.sleep(0.3)
        second = scrape()
    assert 'ledger_projection_lag_events{projection="jobs"} 2.0' in first
    lag = next(
        line for line in second.splitlines() if line.startswith("ledger_projection_lag_seconds ")
    )
    assert float(lag.split()[1]) >= 0.3
