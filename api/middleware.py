"""The one ASGI layer every HTTP request passes: limits, then metrics and access log.

One plain callable rather than a Litestar `ASGIMiddleware` each: every layer costs a
call, a wrapped `send` and Litestar's bypass checks per request, and this work is the
same for all routes. The order is the one three layers had: metrics and the access log
see the 431 or 503 the limits answer with, and time it.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from litestar.enums import ScopeType

from api import hot_path
from api.access_log import log_request
from api.headers import stamp
from api.limits import RequestLimits, answer
from api.metrics import UNROUTED, Metrics
from api.problems import failure

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.types import ASGIApp, Message, Receive, Scope, Send


class RequestLayer:
    """Limits, metrics and the access log around the app's own handling of a request
    (`RequestLayer(metrics, limits).around(app)`).

    It stands where Litestar calls its exception handling and router, so a request the
    hot path answers (`api.hot_path`) skips them, the route's middleware stack and their
    wrappers of `send`: a sixth of a job read's server CPU over HTTP (BENCHMARKS.md).
    """

    def __init__(self, metrics: Metrics, limits: RequestLimits, hot: bool = True) -> None:
        self.metrics = metrics
        self.limits = limits
        self.hot = hot
        """Whether plain job reads and events take `api.hot_path` (tests compare answers)."""

    def around(self, app: Litestar) -> None:
        """Put this layer between `app` and its exception handling, router and routes."""
        routes = hot_path.HotRoutes.of(route.path for route in app.routes) if self.hot else None
        app.asgi_handler = self.wrap(app.asgi_handler, routes)

    def wrap(self, app: ASGIApp, routes: hot_path.HotRoutes | None) -> ASGIApp:
        metrics, limits = self.metrics, self.limits

        async def layer(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            began = time.perf_counter()
            status = 500
            started = False
            deadline: asyncio.TimerHandle | None = None
            expired = False

            async def sending(message: Message) -> None:
                nonlocal status, started
                if message["type"] == "http.response.start":
                    stamp(message, scope)
                    status = message["status"]
                    started = True
                    # The answer has begun: a stream (the live event feed) runs on unlimited.
                    if deadline is not None:
                        deadline.cancel()
                await send(message)

            try:
                if (problem := limits.oversized(scope)) is not None:
                    await answer(sending, problem)
                    return
                # asyncio.timeout's work without its object and context manager, which
                # together with Litestar's before_send hooks took a fifth of the CPU of a
                # job read in this process.
                task = asyncio.current_task()
                assert task is not None
                cancelling = task.cancelling()

                def expire() -> None:
                    nonlocal expired
                    expired = True
                    task.cancel()

                deadline = asyncio.get_running_loop().call_later(limits.timeout, expire)
                try:
                    to_route: Receive | None = receive
                    if routes is not None and (quick := routes.resolve(scope)) is not None:
                        try:
                            to_route = await quick(scope, receive, sending)
                        except Exception as error:
                            # Outside Litestar's exception handling: answered as it would.
                            if started:
                                raise
                            await answer(sending, failure(scope, error))
                            return
                    if to_route is not None:
                        await app(scope, to_route, sending)
                except asyncio.CancelledError:
                    # Ours to answer only if the deadline cancelled it, and it alone.
                    if not expired or started or task.uncancel() > cancelling:
                        raise
                    await answer(sending, limits.timed_out(scope))
                finally:
                    deadline.cancel()
            finally:
                seconds = time.perf_counter() - began
                method = str(scope.get("method", "GET"))
                route = str(scope.get("path_template") or UNROUTED)
                metrics.observe(method, route, status, seconds)
                log_request(scope, status, seconds)

        return layer
