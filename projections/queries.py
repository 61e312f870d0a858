"""JobQueryService: the one reader of the read models, on an asyncpg pool.

CONTRACT SKELETON: the signatures below are the interface the API codes against;
the projections work fills in the bodies.
"""

from __future__ import annotations

import asyncpg

from ledger.settings import Settings
from projections.rows import JobPage, JobQuery, JobRow, RunningRow, StatsQuery, StatsResult


class JobQueryService:
    """Serves every read from the projections."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings

    @classmethod
    async def connect(cls, settings: Settings) -> JobQueryService:
        """Open a pool on `settings.database_url` with search_path = settings.database_schema."""
        raise NotImplementedError

    async def close(self) -> None:
        await self.pool.close()

    async def list_jobs(self, query: JobQuery) -> JobPage:
        """Newest first by (created_at, id); keyset pagination. Bad cursor -> InvalidCommand('after', ...)."""
        raise NotImplementedError

    async def get_job(self, tenant: str, job_id: str) -> JobRow:
        """The job's row; JobNotFound if never created, JobGone if deleted."""
        raise NotImplementedError

    async def running_jobs(self, tenant: str | None, limit: int = 1000) -> list[RunningRow]:
        """The running set, newest start first."""
        raise NotImplementedError

    async def stats(self, query: StatsQuery) -> StatsResult:
        """Counts and durations from job_stats only (never scans jobs)."""
        raise NotImplementedError

    async def position(self) -> int:
        """The lowest position every projection has reached (0 before any event)."""
        raise NotImplementedError

    async def head(self) -> int:
        """The position of the newest event in the log (0 if empty)."""
        raise NotImplementedError

    async def wait_for_position(self, position: int, timeout: float) -> bool:
        """Wait until every projection has reached `position`; False on timeout."""
        raise NotImplementedError
