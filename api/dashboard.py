"""The dashboard at /dashboard: one HTML page, its CSS and JavaScript, served as static files.

The page holds no data and needs no token to load; its script asks the user for a token,
keeps it in the tab's sessionStorage and reads the native API with it. A strict
Content-Security-Policy lets the page run only its own script and talk only to this server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

STATIC_DIR: Final = Path(__file__).parent / "static"
PAGE: Final = (STATIC_DIR / "dashboard.html").read_bytes()
POLICY: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS: Final = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@get("/dashboard", include_in_schema=False, sync_to_thread=False)
def dashboard_page() -> Response[bytes]:
    """The dashboard page (its data comes from the API, with the token the user gives)."""
    return Response(PAGE, media_type="text/html; charset=utf-8", headers=HEADERS)


dashboard_static = create_static_files_router(
    path="/dashboard/static",
    directories=[STATIC_DIR],
    name="dashboard-static",
    cache_control=CacheControlHeader(no_cache=True),
    include_in_schema=False,
)

DASHBOARD_ROUTES: Final = (dashboard_page, dashboard_static)
"""What `create_app` registers for the dashboard."""
