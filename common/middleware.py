"""The request's id and its metrics, first in ``MIDDLEWARE`` (so redirects and errors count too).

- ``X-Request-ID``: the caller's (a reverse proxy's) when sane, else a new one; on every log line
  of the request (:mod:`common.context`) and of the tasks it queued, and sent back in the answer.
- ``supportdesk_http_requests_total`` / ``supportdesk_http_request_duration_seconds`` by the route
  Django resolved (``api/v1/conversations/<int:pk>``, never the raw path: one series per route).

Sync-only like the rest of the chain's own middleware (see ``settings.MIDDLEWARE``): under ASGI the
chain then runs in one thread.
"""

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from . import context
from .metrics import HTTP_DURATION, HTTP_REQUESTS, UNMATCHED_ROUTE

REQUEST_ID_HEADER = "X-Request-ID"
# Any other method is counted as "other": a client cannot make up series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_route(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    return str(route) if route else UNMATCHED_ROUTE


class RequestObservabilityMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = context.request_id_from_header(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        tokens = context.request_start(request, request_id)
        started = time.perf_counter()
        status = 500
        try:
            response = self.get_response(request)
            status = response.status_code
            response[REQUEST_ID_HEADER] = request_id
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = request_route(request)
            method = request.method if request.method in METHODS else "other"
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_DURATION.labels(method, route).observe(elapsed)
            context.request_end(tokens)
