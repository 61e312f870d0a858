"""create_app: the one place that wires the service's parts into a Litestar application."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

from litestar import Litestar, Request
from litestar.concurrency import sync_to_thread
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig

from api.auth import provide_caller
from api.consistency import provide_read_position
from api.dashboard import DASHBOARD_ROUTES
from api.dialects import DIALECT_HANDLERS
from api.events import EventsController
from api.feed import FEED_HANDLERS
from api.health import health, ready
from api.history import HISTORY_HANDLERS
from api.jobs import JobsController
from api.limits import RequestLimits
from api.metrics import Metrics
from api.middleware import RequestLayer
from api.parts import STATE_KEY, Parts, parts_of
from api.problems import internal_error, problem_plugin
from api.ratelimit import STATE_KEY as RATE_LIMITER
from api.ratelimit import rate_limiter
from api.stats import job_stats
from api.writes import provide_writer
from ledger.application import JobLedger
from ledger.persistence import persistence_env
from ledger.tokens import AsyncTokenVerifier
from projections.queries import JobQueryService

if TYPE_CHECKING:
    from ledger.settings import Settings

log = logging.getLogger("api")


def freeze_startup_heap() -> None:
    """Put everything made so far (modules, the app) out of the garbage collector's reach.

    It lives as long as the server, yet every full collection walked all of it: those
    pauses made most of list reads' p99 at 16 readers (60 -> 19 ms once frozen). Called
    by `ledger serve` and each worker once the app is built, not by tests that build many.
    """
    gc.collect()
    gc.freeze()


def create_app(settings: Settings, *, hot_path: bool = True) -> Litestar:
    """The native API on `settings.database_url` (the embedded server is started before).

    `hot_path=False` leaves every plain job read to its routed handler (`api.hot_path`).
    """
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            queries = await JobQueryService.connect(settings.for_reads())
            stack.push_async_callback(queries.close)
            primary = queries
            if settings.read_database_url is not None:
                # Tokens are checked on the primary, so a revocation counts at once.
                primary = await JobQueryService.connect(settings)
                stack.push_async_callback(primary.close)
            ledger = JobLedger(env=persistence_env(settings))
            stack.callback(ledger.close)
            runner = None
            if settings.run_projections:
                from projections.runner import ProjectionsRunner

                runner = ProjectionsRunner(settings)
                runner.start()
                stack.push_async_callback(sync_to_thread, runner.stop)
            tokens = AsyncTokenVerifier(
                primary.pool, settings.database_schema, settings.admin_token
            )
            # Shut down before the ledger closes (the stack unwinds last in, first out).
            writers = ThreadPoolExecutor(settings.write_threads, thread_name_prefix="ledger-write")
            stack.callback(writers.shutdown)
            app.state[STATE_KEY] = Parts(settings, ledger, queries, tokens, runner, writers)
            yield

    def provide_queries(
        request: Request[Any, Any, Any], read_position: NamedDependency[int]
    ) -> JobQueryService:
        """The query service, once the read models include the read's `min_position`."""
        return parts_of(request.app.state).queries

    app = Litestar(
        route_handlers=[
            JobsController,
            EventsController,
            job_stats,
            health,
            ready,
            *DIALECT_HANDLERS,
            *HISTORY_HANDLERS,
            *FEED_HANDLERS,
            metrics.endpoint,
            *DASHBOARD_ROUTES,
        ],
        lifespan=[lifespan],
        state=State({RATE_LIMITER: rate_limiter(settings)}),
        dependencies={
            "caller": Provide(provide_caller),
            "writer": Provide(provide_writer),
            "queries": Provide(provide_queries, sync_to_thread=False),
            "read_position": Provide(provide_read_position),
        },
        plugins=[problem_plugin()],
        # 500 by status too, so Litestar's own server errors are logged like ours.
        exception_handlers={Exception: internal_error, 500: internal_error},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Job Ledger",
            version="1",
            use_handler_docstrings=True,
            description="An event-sourced job ledger: services post job transitions, "
            "dashboards read jobs and statistics.",
        ),
        debug=False,
    )
    limits = RequestLimits(settings.max_header_bytes, settings.request_timeout)
    RequestLayer(metrics, limits, hot=hot_path).around(app)
    return app
