"""The service under test, run as real processes: `ledger serve` and `ledger projections run`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import psutil


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def ledger_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from ledger.cli import main; raise SystemExit(main())", *args]


class Service:
    """A `ledger serve` process on its own port, against a given database and schema."""

    def __init__(
        self,
        database_url: str,
        schema: str,
        workdir: Path,
        *,
        projections: bool = True,
        workers: int = 1,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_DATABASE_SCHEMA": schema,
            "LEDGER_DATA_DIR": str(workdir / "data"),
            "LEDGER_PORT": str(self.port),
            "LEDGER_RUN_PROJECTIONS": "true" if projections else "false",
            "LEDGER_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        self.workers = workers
        self.log = (workdir / f"serve-{self.port}.log").open("w")
        self.process: subprocess.Popen[bytes] | None = None

    def run(self, *args: str) -> str:
        """Run a one-shot `ledger` command with this service's environment; its stdout."""
        done = subprocess.run(
            ledger_command(*args), env=self.env, capture_output=True, check=True, timeout=120
        )
        return done.stdout.decode()

    def start(self) -> None:
        command = ledger_command("serve")
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        self.process = subprocess.Popen(
            command, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ledger serve exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("ledger serve did not answer /health within 60 s")

    def rss_bytes(self) -> int:
        """Peak resident memory of the server and its child processes (their high-water
        marks where Linux keeps them, else their resident memory now)."""
        assert self.process is not None
        parent = psutil.Process(self.process.pid)
        return sum(peak_rss(p) for p in [parent, *parent.children(recursive=True)])

    def connections_per_worker(self) -> list[int]:
        """Established client connections held by each serving process, most first."""
        assert self.process is not None
        parent = psutil.Process(self.process.pid)
        servers = (
            [p for p in parent.children() if "spawn_main" in " ".join(p.cmdline())]
            if self.workers > 1
            else [parent]
        )
        counts = [
            sum(
                1
                for c in p.net_connections(kind="tcp")
                if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == self.port
            )
            for p in servers
        ]
        return sorted(counts, reverse=True)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def peak_rss(process: psutil.Process) -> int:
    """The process's peak resident memory (VmHWM), or its current RSS off Linux."""
    try:
        with open(f"/proc/{process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss: int = process.memory_info().rss
    return rss
