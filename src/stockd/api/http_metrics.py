"""HTTP metrics from the ASGI scope: requests, server errors, durations and requests in flight.

Litestar's Prometheus middleware builds a whole ``Request`` (a subscripted
generic, slow to construct) and several label dicts for every request: about a
sixth of a reservation's CPU time over HTTP. This counts the same things, under
the same metric names, from the scope alone.
"""

from __future__ import annotations

import time

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram

APP_NAME = "stockd"
LABELS = ("app_name", "method", "path", "status_code")
REQUESTS = Counter("stockd_requests_total", "Total requests", LABELS)
SERVER_ERRORS = Counter("stockd_requests_error_total", "Requests answered with a 5xx", LABELS)
DURATION = Histogram("stockd_request_duration_seconds", "Request duration, in seconds", LABELS)
IN_PROGRESS = Gauge("stockd_requests_in_progress", "Requests being answered", ("app_name", "method", "path"))
UNMEASURED_PATHS = frozenset({"/metrics"})


def http_metrics(app: ASGIApp) -> ASGIApp:
    """Wrap a route's ASGI app; ``path`` is the route's template, so ids do not explode the label set."""

    async def measured(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"] in UNMEASURED_PATHS:
            await app(scope, receive, send)
            return
        route = (APP_NAME, scope["method"], scope.get("path_template", scope["path"]))
        status = 500  # unless the app gets as far as starting a response
        started = time.perf_counter()

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_progress = IN_PROGRESS.labels(*route)
        in_progress.inc()
        try:
            await app(scope, receive, send_noting_status)
        finally:
            in_progress.dec()
            labels = (*route, str(status))
            REQUESTS.labels(*labels).inc()
            DURATION.labels(*labels).observe(time.perf_counter() - started)
            if status >= 500:
                SERVER_ERRORS.labels(*labels).inc()

    return measured
