"""A bounded soak: `ledger serve` driven at half its measured capacity over loopback for
LEDGER_SOAK_SECONDS (CI: 20 s; RELIABILITY.md reports a 180 s run). No request may fail,
and p99 latency and the server's resident memory must stay flat from start to end."""

from __future__ import annotations

import itertools
import json
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from ledger.tokens import TokenStore
from tests.reliability.harness import Cluster, bearer

pytestmark = pytest.mark.reliability

SOAK_SECONDS = float(os.environ.get("LEDGER_SOAK_SECONDS", "20"))
CAPACITY_SECONDS = 4.0
WORKERS = 8
WINDOWS = 4


def operations(worker: int) -> itertools.cycle[tuple[str, str, dict[str, object] | None]]:
    """A job's life and the reads around it, round and round: 6 writes, 3 reads."""
    steps: list[tuple[str, str, dict[str, object] | None]] = []
    for n in range(1000):
        job = f"soak-{worker}-{n}"
        events = f"/api/v1/jobs/{job}/events"
        steps += [
            (
                "POST",
                "/api/v1/jobs",
                {"id": job, "job_type": f"soak-{n % 5}", "total_records": 100},
            ),
            ("POST", events, {"type": "started"}),
            ("GET", f"/api/v1/jobs/{job}", None),
            ("POST", events, {"type": "progress", "progress": 30, "records_processed": 30}),
            ("POST", events, {"type": "progress", "progress": 60, "records_processed": 60}),
            ("GET", "/api/v1/jobs?first=20", None),
            ("POST", events, {"type": "progress", "progress": 90, "records_processed": 90}),
            ("POST", events, {"type": "succeeded", "records_created": 100}),
            ("GET", "/api/v1/stats", None),
        ]
    return itertools.cycle(steps)


@dataclass
class Load:
    """WORKERS client threads; `rate` None: as fast as answers come (closed loop), else an
    open loop at `rate` requests/s in total, each latency counted from its scheduled time."""

    url: str
    token: str
    seconds: float
    rate: float | None
    prefix: str
    samples: list[tuple[float, float, int]] = field(default_factory=list)
    """(seconds since start, latency, status)."""

    def run(self) -> None:
        began = time.monotonic()
        threads = [
            threading.Thread(target=self._worker, args=(n, began), daemon=True)
            for n in range(WORKERS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.seconds + 60)
            assert not thread.is_alive(), "a client hung"

    def _worker(self, number: int, began: float) -> None:
        steps = operations(hash((self.prefix, number)) % 10**6)
        interval = None if self.rate is None else WORKERS / self.rate
        next_at = began + (interval or 0) * number / WORKERS
        position = 0  # reads ask to see this worker's last write, as a client would
        with httpx.Client(base_url=self.url, headers=bearer(self.token), timeout=30) as http:
            while True:
                now = time.monotonic()
                if interval is not None:
                    if next_at > now:
                        time.sleep(next_at - now)
                    scheduled, next_at = next_at, next_at + interval
                else:
                    scheduled = now
                if scheduled - began >= self.seconds:
                    return
                method, path, body = next(steps)
                params = {"min_position": position} if method == "GET" else None
                answer = http.request(method, path, json=body, params=params)
                done = time.monotonic()
                if method == "POST" and answer.status_code == 201:
                    position = answer.json()["position"]
                self.samples.append((scheduled - began, done - scheduled, answer.status_code))

    @property
    def throughput(self) -> float:
        return len(self.samples) / self.seconds


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[98]


def rss(pid: int) -> int:
    process = psutil.Process(pid)
    return int(process.memory_info().rss)


def test_half_capacity_soak_holds_latency_and_memory_flat(cluster: Cluster, tmp_path: Path) -> None:
    token = TokenStore(cluster.settings).create("acme", "writer")[1]
    served = cluster.serve(LEDGER_LOG_LEVEL="WARNING")
    capacity = Load(served.url, token, CAPACITY_SECONDS, None, "capacity")
    capacity.run()
    assert {s for _, _, s in capacity.samples} <= {200, 201}
    rate = capacity.throughput / 2
    cluster.wait_projected(served.url)  # the soak starts with no backlog from the burst

    rss_start = rss(served.process.pid)
    soak = Load(served.url, token, SOAK_SECONDS, rate, "soak")
    soak.run()
    rss_end = rss(served.process.pid)

    errors = [s for _, _, s in soak.samples if s not in (200, 201)]
    window = SOAK_SECONDS / WINDOWS
    p99s = [
        p99([lat for at, lat, _ in soak.samples if k * window <= at < (k + 1) * window])
        for k in range(WINDOWS)
    ]
    report = {
        "capacity_rps": round(capacity.throughput, 1),
        "soak_rate_rps": round(rate, 1),
        "soak_seconds": SOAK_SECONDS,
        "requests": len(soak.samples),
        "achieved_rps": round(soak.throughput, 1),
        "errors": len(errors),
        "p50_ms": round(statistics.median(lat for _, lat, _ in soak.samples) * 1000, 1),
        "p99_ms_by_window": [round(v * 1000, 1) for v in p99s],
        "rss_mb_start": round(rss_start / 2**20, 1),
        "rss_mb_end": round(rss_end / 2**20, 1),
    }
    print("soak:", json.dumps(report))
    if target := os.environ.get("LEDGER_SOAK_REPORT"):
        Path(target).write_text(json.dumps(report, indent=2) + "\n")
    assert errors == []
    assert soak.throughput > rate * 0.9, "the clients kept up with the schedule"
    # Flat: the last window's p99 within three times the first's (or under 250 ms), and
    # memory grown by less than a quarter plus 40 MB (caches fill at first, then hold).
    assert p99s[-1] <= max(3 * p99s[0], 0.25), report
    assert rss_end <= rss_start * 1.25 + 40 * 2**20, report
