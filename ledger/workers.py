"""`ledger serve --workers N`: a parent process and N uvicorn workers sharing its socket.

The parent opens the database (an embedded server started here stops when the parent
exits, after its workers) and applies the schema, then supervises the workers with
uvicorn's `Multiprocess`: a worker that dies is replaced, SIGINT and SIGTERM stop them
all gracefully. Workers are spawned, not forked, so they learn their settings from the
environment the parent leaves them. Every worker's app starts a projections runner;
the runner's advisory lock lets one of them project at a time.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import fields
from typing import TYPE_CHECKING, Final

from ledger.logs import configure_logging
from ledger.server import uvicorn_config
from ledger.settings import Settings

if TYPE_CHECKING:
    from litestar import Litestar

log = logging.getLogger(__name__)

WORKER_APP: Final = "ledger.workers:worker_app"
"""The factory each worker builds its application with."""
PARENT_CHECK_SECONDS: Final = 0.5


def serve_workers(settings: Settings) -> None:
    """Serve with `settings.workers` processes until SIGINT or SIGTERM (the database is open)."""
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    if settings.secret_key is None:
        from ledger.credentials import server_key

        # Made here, once: workers making it at the same moment could read it half-written.
        server_key(settings)
    os.environ.update(worker_environment(settings))
    config = uvicorn_config(WORKER_APP, settings, workers=settings.workers)
    sock = config.bind_socket()
    supervisor = Multiprocess(config, sockets=[sock])
    try:
        supervisor.run()
    except BaseException:
        supervisor.terminate_all()
        supervisor.join_all()
        raise
    finally:
        sock.close()
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        sys.exit(STARTUP_FAILURE)  # as a single server that cannot start exits


def worker_environment(settings: Settings) -> dict[str, str]:
    """LEDGER_* variables from which `Settings.from_env` reads `settings` back."""
    return {
        f"LEDGER_{f.name.upper()}": _variable(getattr(settings, f.name)) for f in fields(settings)
    }


def worker_app() -> Litestar:
    """One worker's application, on the settings its parent left in the environment."""
    from api.app import create_app, freeze_startup_heap

    settings = Settings.from_env()
    app = create_app(settings)
    configure_logging(settings)  # after Litestar has installed its root handler, as `serve` does
    threading.Thread(
        target=_exit_with_parent, args=(os.getppid(),), name="ledger-parent", daemon=True
    ).start()
    freeze_startup_heap()
    return app


def _exit_with_parent(parent: int) -> None:
    """Stop this worker gracefully once its parent is gone.

    A parent killed outright (SIGKILL, OOM) cannot stop its workers; orphans would go on
    answering on the port, and a new `ledger serve` could not bind it.
    """
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    log.warning("parent process %d is gone; stopping worker %d", parent, os.getpid())
    os.kill(os.getpid(), signal.SIGTERM)


def _variable(value: object) -> str:
    if value is None:
        return ""  # unset: every optional setting reads "" as None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
