"""The measured phases: what each one sends, and the in-process baselines of the reads."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import urlsplit

import msgspec
import psycopg
from psycopg import sql

from bench.http import Connection, Reply
from bench.load import closed_loop, paced
from bench.service import Service, ledger_command
from bench.stats import Run
from ledger.settings import Settings
from projections.queries import JobQueryService
from projections.rows import JobQuery, StatsQuery

T = TypeVar("T")
TENANT = "bench"
JOB_TYPES = ("full_sync", "incremental_sync", "account_sync", "role_generation", "enrichment")


def writer_token(service: Service) -> str:
    """A writer token of the bench tenant: the last line `ledger tokens create` prints."""
    out = service.run("tokens", "create", "--tenant", TENANT, "--role", "writer")
    return out.strip().splitlines()[-1]


def _connection(base_url: str, token: str) -> Connection:
    parts = urlsplit(base_url)
    return Connection(parts.hostname or "127.0.0.1", parts.port or 80, token)


async def _post(conn: Connection, path: str, body: object) -> Reply:
    return await conn.send(conn.prepare("POST", path, msgspec.json.encode(body)))


async def create_jobs(base_url: str, token: str, ids: list[str], start: bool) -> None:
    """Create (and start) jobs in batches, over 4 connections."""
    per_batch = 500 if start else 1000

    def items(job_id: str) -> list[dict[str, object]]:
        created: dict[str, object] = {
            "job_id": job_id,
            "type": "created",
            "job_type": job_type(job_id),
        }
        return [created, {"job_id": job_id, "type": "started"}] if start else [created]

    batches = [
        [item for job_id in ids[n : n + per_batch] for item in items(job_id)]
        for n in range(0, len(ids), per_batch)
    ]
    await send_batches(base_url, token, batches, connections=4)


def job_type(job_id: str) -> str:
    return JOB_TYPES[sum(job_id.encode()) % len(JOB_TYPES)]


async def send_batches(
    base_url: str, token: str, batches: list[list[dict[str, object]]], connections: int
) -> int:
    """Post every batch (each item must be accepted); the last position written."""
    queue = list(reversed(batches))
    last = 0

    async def worker() -> None:
        nonlocal last
        conn = _connection(base_url, token)
        while queue:
            events = queue.pop()
            reply = await _post(conn, "/api/v1/events/batch", {"events": events})
            if reply.status != 200:
                raise RuntimeError(f"batch: {reply.status} {reply.body[:200]!r}")
            results = msgspec.json.decode(reply.body)["results"]
            refused = [r for r in results if "error" in r]
            if refused:
                raise RuntimeError(f"batch item refused: {refused[0]}")
            last = max(last, results[-1]["position"])
        await conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return last


async def single_appends(
    base_url: str, token: str, clients: int, seconds: float, prefix: str = "append"
) -> Run:
    ids = [f"{prefix}-{n}" for n in range(clients)]
    await create_jobs(base_url, token, ids, start=True)
    counter = [0] * clients

    async def step(conn: Connection, n: int) -> tuple[Reply, int]:
        counter[n] += 1
        body = {"type": "progress", "progress": counter[n] % 100, "records_processed": counter[n]}
        return await _post(conn, f"/api/v1/jobs/{ids[n]}/events", body), 1

    return await closed_loop(base_url, token, clients, seconds, step, ok=(201,))


async def batched_ingest(
    base_url: str,
    token: str,
    clients: int,
    seconds: float,
    on_open: Callable[[], object] | None = None,
    prefix: str = "ingest",
) -> Run:
    per_client = 250
    ids = [[f"{prefix}-{c}-{n}" for n in range(per_client)] for c in range(clients)]
    await create_jobs(base_url, token, [i for chunk in ids for i in chunk], start=True)
    counter = [0] * clients

    async def step(conn: Connection, n: int) -> tuple[Reply, int]:
        counter[n] += 1
        events = [
            {"job_id": job_id, "type": "progress", "progress": (counter[n] + k) % 100}
            for k in range(4)
            for job_id in ids[n]
        ]
        return await _post(conn, "/api/v1/events/batch", {"events": events}), len(events)

    return await closed_loop(base_url, token, clients, seconds, step, ok=(200,), on_open=on_open)


def catch_up(service: Service) -> tuple[int, float]:
    """Run `ledger projections run` over the backlog; (events, seconds to reach the head)."""
    settings = Settings(
        database_url=service.env["LEDGER_DATABASE_URL"],
        database_schema=service.env["LEDGER_DATABASE_SCHEMA"],
    )

    async def positions() -> tuple[int, int]:
        queries = await JobQueryService.connect(settings)
        try:
            return await queries.position(), await queries.head()
        finally:
            await queries.close()

    before, head = _run(positions())
    runner = subprocess.Popen(
        ledger_command("projections", "run"),
        env=service.env,
        stdout=subprocess.DEVNULL,
        stderr=None,
    )
    started = time.perf_counter()
    shown = started
    try:
        while (position := _run(positions())[0]) < head:
            if runner.poll() is not None:
                raise RuntimeError(f"ledger projections run exited with {runner.returncode}")
            if time.perf_counter() - shown > 2:
                shown = time.perf_counter()
                print(f"    projected {position - before:,} of {head - before:,}", flush=True)
            time.sleep(0.05)
        return head - before, time.perf_counter() - started
    finally:
        runner.terminate()
        runner.wait(timeout=30)


def rebuild(service: Service) -> float:
    """Seconds `ledger projections rebuild` takes to rebuild every read model."""
    started = time.perf_counter()
    subprocess.run(
        ledger_command("projections", "rebuild"),
        env=service.env,
        stdout=subprocess.DEVNULL,
        check=True,
        timeout=3600,
    )
    return time.perf_counter() - started


def settle(service: Service) -> float:
    """VACUUM (ANALYZE) the schema's tables and CHECKPOINT, as pgbench does before a run:
    otherwise autovacuum of the freshly loaded millions of rows, and the checkpoint after
    them, would run during the reads and be timed as their latency. Seconds taken."""
    started = time.perf_counter()
    schema = service.env["LEDGER_DATABASE_SCHEMA"]
    with psycopg.connect(service.env["LEDGER_DATABASE_URL"], autocommit=True) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", (schema,)
        ).fetchall()
        for (table,) in tables:
            conn.execute(
                sql.SQL("VACUUM (ANALYZE) {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
            )
        conn.execute("CHECKPOINT")
    return time.perf_counter() - started


def _run(coroutine: Coroutine[object, object, T]) -> T:
    """Run a coroutine from sync code that is itself called inside a running loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def live_lag(base_url: str, token: str, rate: float, seconds: float) -> Run:
    """Ingest at `rate` events/s in batches of 100 while probes time write -> visible read."""
    ids = [f"lag-{n}" for n in range(100)]
    await create_jobs(base_url, token, [*ids, "lag-probe"], start=True)

    async def send(conn: Connection, n: int) -> None:
        events = [{"job_id": j, "type": "progress", "progress": n % 100} for j in ids]
        await _post(conn, "/api/v1/events/batch", {"events": events})

    probes: list[float] = []

    async def probe() -> None:
        conn = _connection(base_url, token)
        end = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < end:
            n += 1
            written = await _post(
                conn, "/api/v1/jobs/lag-probe/events", {"type": "progress", "progress": n % 100}
            )
            t = time.perf_counter()
            position = msgspec.json.decode(written.body)["position"]
            seen = await conn.send(
                conn.prepare("GET", f"/api/v1/jobs/lag-probe?min_position={position}")
            )
            if seen.status == 200:
                probes.append(time.perf_counter() - t)
            await asyncio.sleep(0.02)
        await conn.close()

    started = time.perf_counter()
    await asyncio.gather(paced(base_url, token, rate / 100, seconds, send), probe())
    return Run(operations=len(probes), seconds=time.perf_counter() - started, latencies=probes)


async def load_jobs(base_url: str, token: str, count: int) -> tuple[int, float]:
    """Create `count` jobs in a fixed mix of statuses, in batches of about 1000 events:
    60% started, of which half succeed and a sixth fail. (last position, seconds)."""
    started = time.perf_counter()
    batches: list[list[dict[str, object]]] = []
    events: list[dict[str, object]] = []
    shown = started
    for n in range(count):
        job_id = f"job-{n:08d}"
        events.append({"job_id": job_id, "type": "created", "job_type": job_type(job_id)})
        kind = n % 100
        if kind < 60:
            events.append({"job_id": job_id, "type": "started"})
        if kind < 30:
            events.append({"job_id": job_id, "type": "succeeded", "records_created": kind})
        elif kind < 40:
            events.append({"job_id": job_id, "type": "failed", "error_message": "bench"})
        if len(events) >= 997 or n == count - 1:
            batches.append(events)
            events = []
        if len(batches) == 100 or n == count - 1:
            last = await send_batches(base_url, token, batches, connections=4)
            batches = []
            if time.perf_counter() - shown > 5:
                shown = time.perf_counter()
                rate = (n + 1) / (shown - started)
                print(f"    {n + 1:,} of {count:,} jobs ({rate:,.0f} jobs/s)", flush=True)
    return last, time.perf_counter() - started


Reads = list[tuple[Run, Run]]
"""Rounds of one read: (over HTTP, the same query in-process) each."""


async def read_latencies(
    service: Service,
    token: str,
    seconds: float,
    rounds: int = 1,
    spread: list[list[int]] | None = None,
) -> list[tuple[str, Reads]]:
    """(name, rounds) for each read the issue names, each round the read over HTTP and
    then the same query in-process; `spread` gets the readers' connections held by each
    worker in each HTTP round."""
    settings = Settings(
        database_url=service.env["LEDGER_DATABASE_URL"],
        database_schema=service.env["LEDGER_DATABASE_SCHEMA"],
    )
    queries = await JobQueryService.connect(settings)
    try:
        page_100 = await _cursor_of_page(queries, 100)
        total = await _job_count(queries)
        ids = [f"job-{n:08d}" for n in range(total)]
        lists = [
            ("GET /api/v1/jobs (first page)", "/api/v1/jobs", JobQuery(tenant=TENANT)),
            (
                "GET /api/v1/jobs?status=running",
                "/api/v1/jobs?status=running",
                JobQuery(tenant=TENANT, status=("running",)),
            ),
            (
                "GET /api/v1/jobs?job_type=enrichment",
                "/api/v1/jobs?job_type=enrichment",
                JobQuery(tenant=TENANT, job_type=("enrichment",)),
            ),
            (
                "GET /api/v1/jobs?start_date=… (started since 2000)",
                "/api/v1/jobs?start_date=2000-01-01T00:00:00Z",
                JobQuery(tenant=TENANT, start_date=datetime(2000, 1, 1, tzinfo=UTC)),
            ),
            (
                "GET /api/v1/jobs page 100 by cursor",
                f"/api/v1/jobs?after={page_100}",
                JobQuery(tenant=TENANT, after=page_100 or None),
            ),
        ]
        stats_path = "/api/v1/stats?group_by=status,job_type"
        stats_query = StatsQuery(tenant=TENANT, group_by=("status", "job_type"))
        cases: list[tuple[str, Callable[[int], str], Callable[[], Awaitable[object]]]] = [
            *((name, _constant(path), _listing(queries, query)) for name, path, query in lists),
            (
                "GET /api/v1/jobs/{id}",
                lambda _n: f"/api/v1/jobs/{random.choice(ids)}",
                lambda: queries.get_job_body(TENANT, random.choice(ids)),
            ),
            (
                "GET /api/v1/jobs/running",
                _constant("/api/v1/jobs/running"),
                lambda: queries.running_jobs(TENANT),
            ),
            (
                "GET /api/v1/stats?group_by=status,job_type",
                _constant(stats_path),
                lambda: queries.stats(stats_query),
            ),
        ]
        results = []
        for name, path_for, call in cases:
            runs = []
            for _ in range(rounds):
                http = await _http_reads(service, token, seconds, path_for, spread)
                runs.append((http, await _direct_reads(seconds, call)))
            results.append((name, runs))
        return results
    finally:
        await queries.close()


async def _http_reads(
    service: Service,
    token: str,
    seconds: float,
    path_for: Callable[[int], str],
    spread: list[list[int]] | None,
) -> Run:
    async def step(conn: Connection, n: int) -> tuple[Reply, int]:
        return await conn.send(conn.prepare("GET", path_for(n))), 1

    def on_open() -> None:
        if spread is not None:
            spread.append(service.connections_per_worker())

    return await closed_loop(service.url, token, 16, seconds, step, ok=(200,), on_open=on_open)


async def _direct_reads(seconds: float, call: Callable[[], Awaitable[object]]) -> Run:
    latencies: list[float] = []
    end = time.perf_counter() + seconds
    started = time.perf_counter()

    async def reader() -> None:
        while time.perf_counter() < end:
            t = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t)

    await asyncio.gather(*(reader() for _ in range(16)))
    return Run(len(latencies), time.perf_counter() - started, latencies)


def _constant(path: str) -> Callable[[int], str]:
    return lambda _n: path


def _listing(queries: JobQueryService, query: JobQuery) -> Callable[[], Awaitable[object]]:
    return lambda: queries.list_jobs(query)


async def _cursor_of_page(queries: JobQueryService, page: int) -> str:
    """The cursor that starts page `page` (or the last page, if there are fewer)."""
    after = ""
    for _ in range(page - 1):
        result = await queries.list_jobs(JobQuery(tenant=TENANT, after=after or None))
        if not result.has_next_page or result.end_cursor is None:
            break
        after = result.end_cursor
    return after


async def _job_count(queries: JobQueryService) -> int:
    stats = await queries.stats(StatsQuery(tenant=TENANT, group_by=("status",)))
    return stats.total
