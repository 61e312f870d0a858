"""The service's long-lived parts, opened by the app's lifespan and handed to handlers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from litestar.datastructures import State

    from ledger.application import JobLedger
    from ledger.settings import Settings
    from ledger.tokens import AsyncTokenVerifier
    from projections.queries import JobQueryService
    from projections.runner import ProjectionsRunner

STATE_KEY = "ledger_parts"


@dataclass(frozen=True, slots=True)
class Parts:
    settings: Settings
    ledger: JobLedger
    queries: JobQueryService
    tokens: AsyncTokenVerifier
    runner: ProjectionsRunner | None
    writers: ThreadPoolExecutor
    """Where writes run: each thread waits for its group commit, so there are many."""


def parts_of(state: State | dict[str, Any]) -> Parts:
    """The parts kept in the application's state."""
    parts = state[STATE_KEY]
    assert isinstance(parts, Parts)
    return parts
