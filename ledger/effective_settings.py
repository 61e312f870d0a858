"""`ledger config`: the settings in force, where each came from, and secrets masked."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final

from ledger.server import redact
from ledger.settings import Settings

SECRETS: Final = frozenset({"admin_token", "secret_key"})
"""Settings shown only as set or unset."""
URLS: Final = frozenset({"database_url", "read_database_url"})
"""Settings shown without their password."""
MASK: Final = "****"


@dataclass(frozen=True, slots=True)
class Line:
    """One setting: its variable, the value in force (masked), and `env` or `default`."""

    variable: str
    value: str
    source: str


def variable_of(field_name: str) -> str:
    """The environment variable of a Settings field (`pool_max_size` -> LEDGER_POOL_MAX_SIZE)."""
    return f"LEDGER_{field_name.upper()}"


def shown(name: str, value: object) -> str:
    if value is None:
        return "(unset)" if name not in URLS else "(unset: embedded PostgreSQL)"
    if name in SECRETS:
        return MASK
    if name in URLS:
        return redact(str(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def effective_settings(settings: Settings, environ: Mapping[str, str] | None = None) -> list[Line]:
    """Every setting as `ledger` would use it."""
    env = os.environ if environ is None else environ
    return [
        Line(
            variable_of(f.name),
            shown(f.name, getattr(settings, f.name)),
            "env" if env.get(variable_of(f.name)) else "default",
        )
        for f in fields(settings)
    ]


def render(lines: list[Line]) -> str:
    """Aligned `VARIABLE  value  (source)` lines."""
    width = max(len(line.variable) for line in lines)
    return "\n".join(f"{line.variable:<{width}}  {line.value}  ({line.source})" for line in lines)
