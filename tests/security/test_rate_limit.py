"""Rate limiting per credential: off by default, 429 with Retry-After past the rate."""

from __future__ import annotations

import time
from dataclasses import replace

import httpx
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.ratelimit import RateLimiter, TooManyRequests
from ledger.settings import Settings
from ledger.tokens import TokenStore
from tests.api.helpers import assert_problem
from tests.reliability.harness import Cluster, bearer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    for _ in range(3):
        limiter.take("tok_a")
    with pytest.raises(TooManyRequests) as refused:
        limiter.take("tok_a")
    assert refused.value.retry_after == 1
    limiter.take("tok_b")  # another credential has its own bucket
    clock.now += 0.5  # one request's worth at 2 per second
    limiter.take("tok_a")
    with pytest.raises(TooManyRequests):
        limiter.take("tok_a")


def test_a_slow_rate_asks_for_a_longer_wait() -> None:
    limiter = RateLimiter(rate=0.1, burst=1, clock=Clock())
    limiter.take("tok_a")
    with pytest.raises(TooManyRequests) as refused:
        limiter.take("tok_a")
    assert refused.value.retry_after == 10
    assert refused.value.problem().headers == {"Retry-After": "10"}


def test_settings_read_the_rate_limit() -> None:
    settings = Settings.from_env({"LEDGER_RATE_LIMIT": "2.5", "LEDGER_RATE_BURST": "7"})
    assert (settings.rate_limit, settings.rate_burst) == (2.5, 7)
    assert Settings.from_env({}).rate_limit == 0  # off by default


async def test_the_native_api_answers_429_past_a_credentials_rate(settings: Settings) -> None:
    tokens = TokenStore(settings)
    first = {"Authorization": f"Bearer {tokens.create('acme', 'reader')[1]}"}
    second = {"Authorization": f"Bearer {tokens.create('acme', 'reader')[1]}"}
    limited = replace(settings, rate_limit=0.5, rate_burst=3)
    async with AsyncTestClient(create_app(limited)) as client:
        for _ in range(3):
            assert (await client.get("/api/v1/jobs", headers=first)).status_code == 200
        refused = await client.get("/api/v1/jobs", headers=first)
        problem = assert_problem(refused, 429, "too-many-requests")
        assert refused.headers["retry-after"] == "2"
        assert problem["retry_after"] == 2
        assert (await client.get("/api/v1/jobs", headers=second)).status_code == 200
        # A write is counted too, and refused before its body is looked at.
        write = await client.post("/api/v1/jobs", json={"job_type": "x"}, headers=first)
        assert write.status_code == 429


async def test_without_a_rate_limit_nothing_is_refused(settings: Settings) -> None:
    headers = {"Authorization": f"Bearer {TokenStore(settings).create('acme', 'reader')[1]}"}
    async with AsyncTestClient(create_app(settings)) as client:
        answers = [
            (await client.get("/api/v1/stats", headers=headers)).status_code for _ in range(60)
        ]
    assert set(answers) == {200}


@pytest.mark.reliability
def test_a_served_process_limits_each_credential(cluster: Cluster) -> None:
    store = TokenStore(cluster.settings)
    busy, quiet = store.create("acme", "writer")[1], store.create("acme", "reader")[1]
    served = cluster.serve(LEDGER_RATE_LIMIT="2", LEDGER_RATE_BURST="5")
    with httpx.Client(base_url=served.url, timeout=10) as http:
        answers = [http.get("/api/v1/jobs", headers=bearer(busy)) for _ in range(8)]
        assert [a.status_code for a in answers[:5]] == [200] * 5
        refused = answers[-1]
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert int(refused.headers["retry-after"]) >= 1
        assert http.get("/api/v1/jobs", headers=bearer(quiet)).status_code == 200
        time.sleep(int(refused.headers["retry-after"]))
        assert http.get("/api/v1/jobs", headers=bearer(busy)).status_code == 200
