"""The served API, a writer of tenant acme, and scrapes of /metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ledger.client import LedgerClient
from ledger.settings import Settings
from ledger.tokens import TokenStore
from tests.client.server import serve

Scrape = Callable[[], dict[tuple[str, tuple[tuple[str, str], ...]], float]]


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    with serve(settings) as url:
        yield url


@pytest.fixture
def token(settings: Settings) -> str:
    _, secret = TokenStore(settings).create("acme", "writer", label="ops tests")
    return secret


@pytest.fixture
def writer(base_url: str, token: str) -> Iterator[LedgerClient]:
    with LedgerClient(base_url, token) as client:
        yield client


@pytest.fixture
def scrape(base_url: str) -> Scrape:
    """GET /metrics, as {(sample name, sorted labels): value}."""

    def read() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = httpx.get(f"{base_url}/metrics")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }

    return read
