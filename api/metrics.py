"""`GET /metrics` in Prometheus' text format, and the request metrics `api.middleware` keeps.

Request counts and latencies are kept as the requests pass. The ledger's own numbers are
read when Prometheus scrapes: the log's head and each projection's position (lag in
events), how long the oldest unprojected event has waited (lag in seconds, as seen by
this process's scrapes), the projecting rate between two scrapes, events appended by
type since this process started (read from the log, so every writer's appends count),
the group committer's transactions, writes and events, and both connection pools.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from litestar import Request, Response, get
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from api.parts import Parts, parts_of

if TYPE_CHECKING:
    from litestar.handlers import HTTPRouteHandler

PROJECTIONS: Final = ("jobs", "running_jobs", "job_stats", "job_status_intervals")
SELECT_POSITIONS: Final = " UNION ALL ".join(
    f"SELECT '{name}' AS projection, coalesce((SELECT notification_id FROM {name}_tracking "
    "WHERE application_name = 'ledger'), 0) AS position"
    for name in PROJECTIONS
)
SELECT_HEAD: Final = "SELECT coalesce(max(notification_id), 0) FROM ledger_events"
COUNT_EVENTS_BY_TOPIC: Final = (
    "SELECT topic, count(*) AS events FROM ledger_events "
    "WHERE notification_id > $1 AND notification_id <= $2 GROUP BY topic"
)
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNROUTED: Final = "unrouted"


@dataclass(slots=True)
class LedgerSample:
    """The ledger's numbers at one scrape."""

    head: int = 0
    positions: dict[str, int] = field(default_factory=dict)
    lag_seconds: float = 0.0
    rate: float = 0.0
    events_by_type: dict[str, int] = field(default_factory=dict)
    commits: tuple[int, int, int] = (0, 0, 0)
    read_pool: tuple[int, int, int] = (0, 0, 0)
    """Size, idle, max of the asyncpg pool that serves reads."""
    write_pool: dict[str, int] = field(default_factory=dict)


class LedgerCollector(Collector):
    """Turns the latest `LedgerSample` into metric families at each scrape."""

    def __init__(self) -> None:
        self.sample = LedgerSample()
        self._counted_to: int | None = None
        self._waiting_since: deque[tuple[float, int]] = deque()
        self._previous: tuple[float, int] | None = None

    async def refresh(self, parts: Parts) -> None:
        """Read the ledger's numbers for this scrape."""
        sample = LedgerSample(events_by_type=self.sample.events_by_type)
        async with parts.queries.pool.acquire() as conn:
            sample.head = int(await conn.fetchval(SELECT_HEAD))
            rows = await conn.fetch(SELECT_POSITIONS)
            sample.positions = {str(r["projection"]): int(r["position"]) for r in rows}
            if self._counted_to is None:
                self._counted_to = sample.head  # counters start with the process
            elif sample.head > self._counted_to:
                counts = await conn.fetch(COUNT_EVENTS_BY_TOPIC, self._counted_to, sample.head)
                for row in counts:
                    name = event_type(str(row["topic"]))
                    sample.events_by_type[name] = sample.events_by_type.get(name, 0) + row["events"]
                self._counted_to = sample.head
        position = min(sample.positions.values(), default=0)
        now = time.monotonic()
        sample.lag_seconds = self._lag_seconds(now, sample.head, position)
        if self._previous is not None and now > self._previous[0]:
            sample.rate = max(0, position - self._previous[1]) / (now - self._previous[0])
        self._previous = (now, position)
        sizes = parts.ledger.committer.sizes
        sample.commits = (sizes.transactions, sizes.writes, sizes.events)
        pool = parts.queries.pool
        sample.read_pool = (pool.get_size(), pool.get_idle_size(), pool.get_max_size())
        sample.write_pool = write_pool_stats(parts.ledger)
        self.sample = sample

    def _lag_seconds(self, now: float, head: int, position: int) -> float:
        """Since when the log has been ahead of `position`, as far as scrapes have seen."""
        if not self._waiting_since or self._waiting_since[-1][1] < head:
            self._waiting_since.append((now, head))
        while self._waiting_since and self._waiting_since[0][1] <= position:
            self._waiting_since.popleft()
        if position >= head or not self._waiting_since:
            return 0.0
        return now - self._waiting_since[0][0]

    def collect(self) -> Iterator[Metric]:
        s = self.sample
        yield _gauge("ledger_log_head_position", "Position of the newest event in the log.", s.head)
        positions = GaugeMetricFamily(
            "ledger_projection_position",
            "Log position each projection has reached.",
            labels=["projection"],
        )
        lag = GaugeMetricFamily(
            "ledger_projection_lag_events",
            "Events in the log that the projection has not processed yet.",
            labels=["projection"],
        )
        for name, reached in sorted(s.positions.items()):
            positions.add_metric([name], reached)
            lag.add_metric([name], max(0, s.head - reached))
        yield positions
        yield lag
        yield _gauge(
            "ledger_projection_lag_seconds",
            "How long the oldest event not yet projected has waited (seen between scrapes).",
            s.lag_seconds,
        )
        yield _gauge(
            "ledger_projection_events_per_second",
            "Events projected per second since the previous scrape.",
            s.rate,
        )
        appended = CounterMetricFamily(
            "ledger_events_appended",
            "Events appended to the log since this process started, by type (all writers).",
            labels=["type"],
        )
        for name, count in sorted(s.events_by_type.items()):
            appended.add_metric([name], count)
        yield appended
        transactions, writes, events = s.commits
        yield CounterMetricFamily(
            "ledger_group_commit_transactions",
            "Transactions the group committer has made (events per transaction: "
            "rate of _events over rate of _transactions).",
            value=transactions,
        )
        yield CounterMetricFamily(
            "ledger_group_commit_writes", "Writes carried by group commits.", value=writes
        )
        yield CounterMetricFamily(
            "ledger_group_commit_events", "Events appended by group commits.", value=events
        )
        size, idle, most = s.read_pool
        pool = GaugeMetricFamily(
            "ledger_db_pool_connections",
            "Database connections by pool (read: asyncpg, write: the event store) and state.",
            labels=["pool", "state"],
        )
        pool.add_metric(["read", "in_use"], size - idle)
        pool.add_metric(["read", "idle"], idle)
        pool.add_metric(["read", "max"], most)
        for state, value in sorted(s.write_pool.items()):
            pool.add_metric(["write", state], value)
        yield pool


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def event_type(topic: str) -> str:
    """`ledger.domain:Job.Started` -> `Started`."""
    return topic.rsplit(".", 1)[-1].rsplit(":", 1)[-1]


def write_pool_stats(ledger: Any) -> dict[str, int]:
    """In use, idle and max connections of the event store's psycopg pool, if it has one."""
    pool = getattr(getattr(getattr(ledger, "recorder", None), "datastore", None), "pool", None)
    stats = getattr(pool, "get_stats", None)
    if stats is None:
        return {}
    numbers: dict[str, int] = stats()
    size, idle = numbers.get("pool_size", 0), numbers.get("pool_available", 0)
    return {"in_use": size - idle, "idle": idle, "max": numbers.get("pool_max", size)}


class Metrics:
    """The service's registry: request metrics, the ledger collector, and their endpoint."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ledger_http_requests",
            "HTTP requests by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ledger_http_request_duration_seconds",
            "Time to answer HTTP requests, by method and route.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.ledger = LedgerCollector()
        self.registry.register(self.ledger)
        self.endpoint: HTTPRouteHandler = self._endpoint()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count and time one request by its route template, never its raw path."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            # `labels()` checks and locks on every call; the children it returns are kept.
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._children[key] = children
        count, latency = children
        count.inc()
        latency.observe(seconds)

    def _endpoint(self) -> HTTPRouteHandler:
        metrics = self

        @get("/metrics", include_in_schema=False, tags=["health"])
        async def scrape(request: Request[Any, Any, Any]) -> Response[bytes]:
            """Prometheus metrics (text format); no token needed, keep it inside the network."""
            await metrics.ledger.refresh(parts_of(request.app.state))
            return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

        return scrape
