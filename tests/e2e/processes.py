"""The `ledger` command as a real process, run the way people and deployments run it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped, unused-ignore]

START_TIMEOUT = 90
STOP_TIMEOUT = 30.0


def ledger_command() -> list[str]:
    """The installed console script, or the module when the project is not installed."""
    script = Path(sys.executable).with_name("ledger")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ledger.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def postgres_processes(pgdata: Path) -> list[str]:
    """Command lines of the PostgreSQL servers whose data folder is `pgdata`."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "-D" in cmdline[:-1] and cmdline[cmdline.index("-D") + 1] == str(pgdata):
            found.append(f"{process.pid} {' '.join(cmdline)}")
    return found


@dataclass
class Running:
    """A long-running `ledger` process (serve, projections run) and where its output goes."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def first_line(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = self.output()
            if "\n" in text:
                return text.splitlines()[0]
            self._check_alive()
            time.sleep(0.05)
        raise AssertionError(f"{self.process.args!r} printed nothing:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send `sig` and wait for the process to end; returns its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.process.args!r} ignored {sig}:\n{self.output()}") from None

    def _check_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"{self.process.args!r} exited with {self.process.returncode}:\n{self.output()}"
            )


@dataclass
class Served(Running):
    """A running `ledger serve`."""

    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> httpx.Response:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                response = httpx.get(f"{self.url}/ready", timeout=2)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 200:
                return response
            time.sleep(0.1)
        raise AssertionError(f"ledger serve never became ready:\n{self.output()}")


@dataclass
class Ledger:
    """Runs `ledger` commands in one environment, and stops the processes it started."""

    env: dict[str, str]
    cwd: Path
    started: list[Running] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ledger_command(), *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )

    def check(self, *args: str) -> str:
        """Run a command that must succeed; returns its standard output."""
        done = self.run(*args)
        assert done.returncode == 0, (
            f"ledger {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        )
        return done.stdout

    def serve(self, *args: str, port: int | None = None) -> Served:
        port = port or free_port()
        process, log = self._popen("serve", "--port", str(port), *args)
        served = Served(process, log, port)
        self.started.append(served)
        return served

    def start(self, *args: str) -> Running:
        """Start a long-running command other than serve (`projections run`)."""
        running = Running(*self._popen(*args))
        self.started.append(running)
        return running

    def _popen(self, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.cwd / f"{args[0]}-{len(self.started) + 1}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*ledger_command(), *args],
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return process, log

    def close(self) -> None:
        for running in self.started:
            if running.process.poll() is None:
                running.process.send_signal(signal.SIGTERM)
                try:
                    running.process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    running.process.kill()
                    running.process.wait()
