"""`ledger serve --workers 2` as real processes: both workers answer, If-Match races between
them leave one winner per version and gap-free streams, one of them projects, the read models
equal a replay, and stopping the parent stops everything it started, on the embedded default
too. Under faults: a killed worker is replaced, another takes over the projections, and the
workers of a killed parent stop by themselves."""

from __future__ import annotations

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped, unused-ignore]
import psycopg
import pytest
from psycopg import sql

from ledger.application import JobLedger
from ledger.domain import stream_id
from ledger.persistence import persistence_env
from ledger.server import redact
from ledger.settings import Settings
from projections.runner import LOCK_CLASS
from tests.e2e.conftest import ADMIN_TOKEN
from tests.e2e.processes import START_TIMEOUT, STOP_TIMEOUT, Ledger, Served, postgres_processes
from tests.property.replay import assert_projections_match_replay
from tests.reliability.harness import wait_until

TENANT = "acme"
JOB = "job-workers-1"
ROUNDS = 8
LOCK_HOLDERS = """
    SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.database = a.datid
      AND l.classid = %s AND l.objid = hashtext(%s)::oid AND l.objsubid = 2
"""
RUNNERS = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
VERSIONS = "SELECT originator_version FROM {}.ledger_events WHERE originator_id = %s ORDER BY 1"


@dataclass
class Worker:
    """One worker process, and a client whose keep-alive connection that worker accepted."""

    process: psutil.Process
    client: httpx.Client

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        response = self.client.request(method, path, **options)
        # A closed connection would be reopened to whichever worker accepts it.
        assert _holds(self.process, _client_address(response)), "answered by another worker"
        return response

    def event(self, body: dict[str, Any], version: int) -> httpx.Response:
        return self.request(
            "POST",
            f"/api/v1/jobs/{JOB}/events",
            json=body,
            params={"tenant": TENANT},
            headers={"If-Match": f'"{version}"'},
        )


def _client_address(response: httpx.Response) -> tuple[str, int]:
    host, port = response.extensions["network_stream"].get_extra_info("client_addr")
    return host, port


def _holds(process: psutil.Process, client: tuple[str, int]) -> bool:
    """`process` holds the server end of the connection from `client`."""
    return any(
        c.raddr and (c.raddr.ip, c.raddr.port) == client for c in process.net_connections("tcp")
    )


def _uses_port(process: psutil.Process, port: int) -> bool:
    """`process` holds a connection whose own end is on `port`."""
    return any(c.laddr.port == port and c.raddr for c in process.net_connections("tcp"))


def _listens(process: psutil.Process, port: int) -> bool:
    try:
        connections = process.net_connections("tcp")
    except psutil.NoSuchProcess:  # exited, or a zombie not yet reaped
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections)


def workers_of(served: Served, count: int) -> list[psutil.Process]:
    """The parent's children that hold its listening socket: its workers (the other child is
    multiprocessing's resource tracker)."""
    parent = psutil.Process(served.process.pid)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = [child for child in parent.children() if _listens(child, served.port)]
        if len(found) == count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not {count} workers:\n{served.output()}")


def pin(served: Served, processes: list[psutil.Process]) -> list[Worker]:
    """A ready client on each worker: new connections until every worker has accepted one."""
    pinned: dict[int, Worker] = {}
    deadline = time.monotonic() + START_TIMEOUT
    while len(pinned) < len(processes):
        assert time.monotonic() < deadline, f"a worker never answered:\n{served.output()}"
        client = httpx.Client(
            base_url=served.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=15
        )
        response = client.get("/ready")
        owner = next((p for p in processes if _holds(p, _client_address(response))), None)
        if response.status_code != 200 or owner is None or owner.pid in pinned:
            client.close()
            continue
        pinned[owner.pid] = Worker(owner, client)
    return [pinned[p.pid] for p in processes]


def race(workers: list[Worker], body: dict[str, Any], version: int) -> list[httpx.Response]:
    """Every worker sends `body` under If-Match `version` at the same moment."""
    gate = threading.Barrier(len(workers))

    def send(worker: Worker) -> httpx.Response:
        gate.wait(timeout=10)
        return worker.event(body, version)

    with ThreadPoolExecutor(len(workers)) as pool:
        return list(pool.map(send, workers))


def assert_all_stopped(processes: list[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(processes, timeout=STOP_TIMEOUT)
    assert alive == [], f"left running: {alive}"


def test_two_workers_race_on_one_job_project_once_and_stop_with_their_parent(
    external: Ledger, schema_url: tuple[str, str]
) -> None:
    url, schema = schema_url
    external.env.update(
        LEDGER_ADMIN_TOKEN=ADMIN_TOKEN,
        LEDGER_LOG_FORMAT="json",
        LEDGER_KEEP_ALIVE_TIMEOUT="60",  # so each client keeps its worker
    )
    served = external.serve("--workers", "2")
    where = redact(url)
    assert served.first_line() == f"ledger: serving {served.url} with 2 workers (database: {where})"
    served.wait_ready()
    processes = workers_of(served, 2)
    workers = pin(served, processes)
    first, second = workers

    created = first.request(
        "POST", "/api/v1/jobs", json={"id": JOB, "job_type": "import", "tenant": TENANT}
    )
    assert created.status_code == 201, created.text
    assert second.event({"type": "started"}, 1).status_code == 201
    version, position = 2, 0
    for step in range(1, ROUNDS + 1):
        answers = race(workers, {"type": "progress", "progress": 10 * step}, version)
        assert sorted(a.status_code for a in answers) == [201, 412], [a.text for a in answers]
        (won,) = [a.json() for a in answers if a.status_code == 201]
        assert won["version"] == version + 1
        version, position = won["version"], won["position"]

    with psycopg.connect(url, autocommit=True) as conn:
        stored = conn.execute(
            sql.SQL(VERSIONS).format(sql.Identifier(schema)), (stream_id(TENANT, JOB),)
        )
        assert [row[0] for row in stored] == list(range(1, version + 1))
    for worker in workers:
        read = worker.request(
            "GET", f"/api/v1/jobs/{JOB}", params={"tenant": TENANT, "min_position": position}
        )
        assert (read.json()["version"], read.json()["progress"]) == (version, 10 * ROUNDS)
    settings = Settings(database_url=url, database_schema=schema)
    ledger = JobLedger(env=persistence_env(settings))
    try:
        assert_projections_match_replay(settings, ledger)
    finally:
        ledger.close()

    # Each worker started a runner; one holds the lock and projects, the other stands by.
    with psycopg.connect(url, autocommit=True) as conn:
        (holder,) = [row[0] for row in conn.execute(LOCK_HOLDERS, (LOCK_CLASS, schema))]
        runners = f"ledger-projections:{schema}"
        wait_until(lambda: conn.execute(RUNNERS, (runners,)).fetchone() == (2,), timeout=10)
    if holder != -1:  # over TCP its port tells the worker; a Unix socket (embedded) has none
        assert [_uses_port(p, holder) for p in processes].count(True) == 1

    family = psutil.Process(served.process.pid).children()
    for worker in workers:
        worker.client.close()
    assert served.stop() == 0
    assert_all_stopped(family)
    output = served.output()
    assert output.count("ledger: serving") == 1
    # Every line after the first is JSON, the workers' included: they log as configured.
    logged = [json.loads(line) for line in output.splitlines()[1:] if line]
    messages = {entry["message"] for entry in logged}
    assert {f"Started server process [{p.pid}]" for p in processes} <= messages
    assert {f"Finished server process [{p.pid}]" for p in processes} <= messages


def test_two_workers_on_the_embedded_default_share_its_server_and_stop_it(
    embedded: Ledger,
) -> None:
    pgdata = (embedded.cwd / "data" / "pgdata").resolve()
    embedded.env["LEDGER_KEEP_ALIVE_TIMEOUT"] = "60"
    served = embedded.serve("--workers", "2")
    served.wait_ready()
    processes = workers_of(served, 2)
    workers = pin(served, processes)

    assert len(postgres_processes(pgdata)) == 1
    # Only the parent holds the server: it stops when the parent exits, after its workers.
    handles = json.loads((pgdata / ".handle_pids.json").read_text())
    assert handles == [served.process.pid]
    positions = []
    for n, worker in enumerate(workers):
        body = {"id": f"job-{n}", "job_type": "import", "tenant": TENANT}
        created = worker.request("POST", "/api/v1/jobs", json=body)
        assert created.status_code == 201, created.text
        positions.append(created.json()["position"])
    listed = workers[0].request(
        "GET", "/api/v1/jobs", params={"tenant": TENANT, "min_position": max(positions)}
    )
    assert sorted(j["id"] for j in listed.json()["jobs"]) == ["job-0", "job-1"]

    family = psutil.Process(served.process.pid).children()
    for worker in workers:
        worker.client.close()
    assert served.stop(signal.SIGINT) == 0
    assert_all_stopped(family)
    assert postgres_processes(pgdata) == []


def test_a_transition_made_through_one_worker_counts_on_the_other(external: Ledger) -> None:
    external.env.update(LEDGER_ADMIN_TOKEN=ADMIN_TOKEN, LEDGER_KEEP_ALIVE_TIMEOUT="60")
    served = external.serve("--workers", "2")
    served.wait_ready()
    first, second = pin(served, workers_of(served, 2))

    created = first.request(
        "POST", "/api/v1/jobs", json={"id": JOB, "job_type": "import", "tenant": TENANT}
    )
    assert created.status_code == 201, created.text
    started = second.request(
        "POST", f"/api/v1/jobs/{JOB}/events", json={"type": "started"}, params={"tenant": TENANT}
    )
    assert started.status_code == 201, started.text
    # Without If-Match: the job is running, whichever worker takes the write.
    progressed = first.request(
        "POST",
        f"/api/v1/jobs/{JOB}/events",
        json={"type": "progress", "progress": 10},
        params={"tenant": TENANT},
    )
    assert progressed.status_code == 201, progressed.text


@pytest.mark.reliability
def test_a_killed_projecting_worker_is_replaced_and_workers_exit_with_a_killed_parent(
    external: Ledger, schema_url: tuple[str, str]
) -> None:
    url, schema = schema_url
    if "host=/" in url:
        # Which worker holds the lock is told by its connection's port.
        pytest.skip("the embedded server's Unix socket gives a connection no port")
    external.env.update(LEDGER_ADMIN_TOKEN=ADMIN_TOKEN, LEDGER_KEEP_ALIVE_TIMEOUT="60")
    served = external.serve("--workers", "2")
    served.wait_ready()

    def projecting() -> psutil.Process | None:
        """The worker that holds the projections' lock, if one does."""
        with psycopg.connect(url, autocommit=True) as conn:
            ports = [row[0] for row in conn.execute(LOCK_HOLDERS, (LOCK_CLASS, schema))]
        holders = [p for p in workers_of(served, 2) for port in ports if _uses_port(p, port)]
        return holders[0] if len(holders) == 1 else None

    wait_until(lambda: projecting() is not None, timeout=10)
    killed = projecting()
    assert killed is not None
    killed.kill()

    # The parent starts another worker, and the lock goes to one of the live ones.
    wait_until(lambda: (holder := projecting()) is not None and holder.pid != killed.pid, 30)
    workers = pin(served, workers_of(served, 2))
    assert killed.pid not in [w.process.pid for w in workers]
    created = workers[0].request(
        "POST", "/api/v1/jobs", json={"id": JOB, "job_type": "import", "tenant": TENANT}
    )
    assert created.status_code == 201, created.text
    for worker in workers:
        read = worker.request(
            "GET",
            f"/api/v1/jobs/{JOB}",
            params={"tenant": TENANT, "min_position": created.json()["position"]},
        )
        assert read.status_code == 200, read.text

    family = psutil.Process(served.process.pid).children()
    for worker in workers:
        worker.client.close()
    assert served.stop(signal.SIGKILL) == -signal.SIGKILL
    # Killed outright, the parent stops nothing; each worker sees it gone and stops itself.
    assert_all_stopped(family)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{served.url}/health", timeout=2)
