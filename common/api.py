"""Cross-app pieces of the REST API (``/api/v1``): errors, pagination, throttles, permissions.

Every API view of every app uses these, so contract §4 holds in one place:

- errors are ``{"detail": "...", "code": "..."}`` with the right 4xx status; validation errors add
  ``"errors": {"field": ["message", ...]}``; unexpected failures are a JSON 500 without a trace;
- lists are ``{"count", "next", "previous", "results"}`` (:class:`DeskPagination`);
- the whole API is rate-limited per user (or per IP for anonymous callers), and logins per IP and
  per account (``RATE_LIMIT_*`` settings, 429 with ``Retry-After``);
- role checks are the permission classes below (:class:`IsAdminRole`,
  :class:`IsSupervisorOrAdmin`, :class:`AdminWriteAuthenticatedRead`).
"""

import hashlib
import ipaddress
import logging
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import (
    BadRequest,
    ObjectDoesNotExist,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.paginator import Paginator
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, permissions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from common.exceptions import Conflict, NotPermitted, ServiceError

if TYPE_CHECKING:  # rest_framework.views reads DEFAULT_THROTTLE_CLASSES (this module) on import
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
WEBHOOKS_PREFIX = "/api/v1/webhooks/"


# --- Errors ------------------------------------------------------------------------------------


def _first_message(errors: Any) -> str:
    """The first human message in a DRF error structure (dict/list/str, nested)."""
    if isinstance(errors, dict):
        for value in errors.values():
            return _first_message(value)
        return ""
    if isinstance(errors, list):
        return _first_message(errors[0]) if errors else ""
    return str(errors)


def _first_code(codes: Any) -> str:
    if isinstance(codes, dict):
        for value in codes.values():
            return _first_code(value)
        return "invalid"
    if isinstance(codes, list):
        return _first_code(codes[0]) if codes else "invalid"
    return str(codes)


def error_body(detail: Any, code: str, **extra: Any) -> dict[str, Any]:
    return {"detail": str(detail), "code": code, **extra}


def api_exception_handler(  # noqa: PLR0912 - one branch per kind of failure
    exc: Exception, context: dict[str, Any]
) -> Response | None:
    """DRF ``EXCEPTION_HANDLER``: every failure becomes ``{"detail", "code"}`` JSON."""
    if isinstance(exc, NotPermitted):
        exc = exceptions.PermissionDenied(exc.message, code=exc.code)
    elif isinstance(exc, Conflict):
        exc = ServiceConflict(exc.message, code=exc.code)
    elif isinstance(exc, ServiceError):
        exc = ServiceRefused(exc.message, code=exc.code)
    elif isinstance(exc, Http404 | ObjectDoesNotExist):
        exc = exceptions.NotFound()
    elif isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError(_("The request was rejected."), code="bad_request")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    from rest_framework.views import exception_handler  # noqa: PLC0415 - see TYPE_CHECKING

    response = exception_handler(exc, context)
    if response is None and database_unavailable(exc):
        return Response(
            error_body(UNAVAILABLE_DETAIL, "service_unavailable"),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": RETRY_AFTER},
        )
    if response is None:
        # Not an API exception: log it with its trace, answer without one.
        logger.exception("Unhandled API error", exc_info=exc)
        return Response(
            error_body(_("Server error."), "server_error"),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    if not isinstance(exc, exceptions.APIException):  # Django's Http404/PermissionDenied
        exc = (
            exceptions.NotFound() if response.status_code == 404 else exceptions.PermissionDenied()
        )
    detail = exc.detail
    if isinstance(exc, exceptions.ValidationError) and isinstance(detail, dict | list):
        errors = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        response.data = error_body(
            _first_message(errors) or _("Invalid input."),
            _first_code(exc.get_codes()),
            errors=errors,
        )
    else:
        code = _first_code(exc.get_codes()) if not isinstance(detail, str) else None
        if isinstance(detail, exceptions.ErrorDetail):
            code = detail.code
        response.data = error_body(_first_message(detail), code or exc.default_code)
    return response


class ServiceRefused(exceptions.APIException):
    """A service said no (``ServiceError``): its message is safe to show."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = _("This change cannot be made.")
    default_code = "invalid"


class ServiceConflict(exceptions.APIException):
    """A service said the change clashes with the current state (``Conflict``)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = _("The request conflicts with the current state.")
    default_code = "conflict"


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = _("The request is too large.")
    default_code = "request_too_large"


def _json_error(status_code: int, detail: Any, code: str) -> JsonResponse:
    return JsonResponse(error_body(detail, code), status=status_code)


# --- The database unreachable: 503, never 500 (issue 16 §1) --------------------------------------

UNAVAILABLE_DETAIL = _("The service is temporarily unavailable. Try again in a moment.")
RETRY_AFTER = "5"


def database_unavailable(exc: BaseException | None) -> bool:
    """PostgreSQL (or the connection pool) could not be reached or dropped the connection: a
    moment's outage, not a bug. A statement that PostgreSQL refused (a constraint, a syntax) is a
    ``DatabaseError`` of another kind and stays a 500."""
    return isinstance(exc, OperationalError | InterfaceError)


def unavailable_response(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """503 with ``Retry-After``: JSON under ``/api/``, a short page elsewhere (the console)."""
    logger.warning("database unavailable on %s: %s", request.path, exc)
    if request.path.startswith(API_PREFIX):
        response: HttpResponse = _json_error(503, UNAVAILABLE_DETAIL, "service_unavailable")
    else:
        response = HttpResponse(
            str(UNAVAILABLE_DETAIL), status=503, content_type="text/plain; charset=utf-8"
        )
    response["Retry-After"] = RETRY_AFTER
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: what an uncaught exception answers (a view's, or a middleware's such as the
    session's). The database unreachable is a 503; anything else Django's own 500."""
    exc = sys.exc_info()[1]
    if database_unavailable(exc):
        return unavailable_response(request, exc)  # type: ignore[arg-type]
    from django.views.defaults import server_error as django_server_error  # noqa: PLC0415

    if request.path.startswith(API_PREFIX):
        return _json_error(500, _("Server error."), "server_error")
    return django_server_error(request)


ID_MAX = 2**63 - 1  # the primary keys are bigint: a larger number names no row and breaks SQL


def id_param(value: str | None) -> int | None:
    """An id from a query string or form field: None when absent or not a number; a number no
    row can have (e.g. ``?page=99999999999999999999``) is a 400, not a database error."""
    try:
        number = int(value) if value else None
    except ValueError:
        return None
    if number is not None and abs(number) > ID_MAX:
        raise BadRequest(f"{number} is out of range")
    return number


PAGE_MAX = 1_000_000  # far past any real list; an OFFSET beyond it would overflow bigint


def page_param(value: str | None) -> int:
    """A page number from a query string: 1 when absent or not a number, at most ``PAGE_MAX``
    (a page past the end is an empty page)."""
    return min(max(id_param(value) or 1, 1), PAGE_MAX)


NUL_REFUSED = _("Text may not contain NUL characters (U+0000).")


def _carries_nul(request: HttpRequest) -> bool:
    """A NUL in a query string or form field: PostgreSQL stores no NUL in text, so it would
    fail as a 500 far from here. Files and JSON bodies are not looked at (DRF's fields refuse
    NUL themselves)."""
    if "\x00" in request.META.get("QUERY_STRING", "") or "%00" in request.META.get(
        "QUERY_STRING", ""
    ):
        return any("\x00" in v for values in request.GET.lists() for v in values[1])
    if request.method == "POST" and request.content_type in {
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    }:
        try:
            return any("\x00" in v for values in request.POST.lists() for v in values[1])
        except (RequestDataTooBig, SuspiciousOperation):
            return False  # answered as such further on
    return False


def _nul_refused(request: HttpRequest) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return _json_error(400, NUL_REFUSED, "invalid")
    return HttpResponse(str(NUL_REFUSED), status=400, content_type="text/plain; charset=utf-8")


class ApiJsonErrorsMiddleware:
    """Below ``/api/``, errors outside DRF views are JSON too (unknown path: 404, crash: 500).

    Django would otherwise answer with its HTML error pages (or a debug page with a trace).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _carries_nul(request):
            return _nul_refused(request)
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        if request.path.startswith(WEBHOOKS_PREFIX):  # Meta's, signed; never a bearer
            return self._as_json(self.get_response(request))
        refused = UnauthenticatedIpThrottle()
        over_limit = not refused.check(request)
        response = self.get_response(request)
        if response.status_code == 401:
            refused.record()
            if over_limit:
                return refused.too_many()
        # Over the limit, a request whose credentials are good still goes through: bad tokens
        # from one address (a whole office behind one NAT) never lock out its valid ones.
        return self._as_json(response)

    @staticmethod
    def _as_json(response: HttpResponse) -> HttpResponse:
        content_type = response.get("Content-Type", "")
        if response.status_code < 400 or content_type.startswith("application/json"):
            return response
        if response.status_code == 404:
            return _json_error(404, exceptions.NotFound.default_detail, "not_found")
        if response.status_code == 400 and not content_type.startswith("text/plain"):
            return _json_error(400, _("Bad request."), "bad_request")
        if response.status_code >= 500:
            return _json_error(response.status_code, _("Server error."), "server_error")
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIX):
            return None
        if isinstance(exception, Http404):
            return _json_error(404, exceptions.NotFound.default_detail, "not_found")
        if isinstance(exception, RequestDataTooBig):
            return _json_error(413, RequestTooLarge.default_detail, "request_too_large")
        if isinstance(exception, SuspiciousOperation):
            return _json_error(400, _("Bad request."), "bad_request")
        if database_unavailable(exception):
            return unavailable_response(request, exception)
        logger.exception("Unhandled API error on %s", request.path, exc_info=exception)
        return _json_error(500, _("Server error."), "server_error")


# --- Pagination --------------------------------------------------------------------------------


class DeskPagination(PageNumberPagination):
    """``?page=N&page_size=M`` (at most 100) → ``{"count", "next", "previous", "results"}``."""

    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100


class CappedCountPaginator(Paginator):
    """Counts the rows up to ``LIST_COUNT_CAP`` (``SELECT count(*) FROM (… LIMIT cap + 1)``), never
    an exact COUNT(*) over a big table at each page; ``capped`` says there are more."""

    capped = False
    cap_setting = "LIST_COUNT_CAP"

    @cached_property
    def count(self) -> int:
        cap = int(getattr(settings, self.cap_setting))
        rows = self.object_list
        found = rows.order_by()[: cap + 1].count() if hasattr(rows, "order_by") else len(rows)
        self.capped = found > cap
        return min(found, cap)


class CappedCountPagination(DeskPagination):
    """:class:`DeskPagination` for big lists: ``count`` stops at ``LIST_COUNT_CAP`` and
    ``count_capped`` (added to ``{"count", "next", "previous", "results"}``) says when it did;
    pages past the cap are not served (narrow the filters or the search)."""

    django_paginator_class = CappedCountPaginator

    def get_paginated_response(self, data: Any) -> Response:
        response = super().get_paginated_response(data)
        response.data["count_capped"] = bool(self.page and self.page.paginator.capped)  # type: ignore[attr-defined]
        return response

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        answer = super().get_paginated_response_schema(schema)
        answer["properties"]["count_capped"] = {"type": "boolean", "example": False}
        return answer


class SearchCountPaginator(CappedCountPaginator):
    """:class:`CappedCountPaginator` for search results: counts up to ``SEARCH_COUNT_CAP``."""

    cap_setting = "SEARCH_COUNT_CAP"


class SearchCountPagination(CappedCountPagination):
    """:class:`CappedCountPagination` of a search: ``count`` stops at ``SEARCH_COUNT_CAP``
    (a common word matches most of a desk; counting them all would cost more than the page)."""

    django_paginator_class = SearchCountPaginator


# --- Throttles ---------------------------------------------------------------------------------


class _LiveRateThrottle(SimpleRateThrottle):
    """Reads its rate from settings at every request (so tests and reloads see changes)."""

    def get_rate(self) -> str | None:
        rates: dict[str, str | None] = getattr(api_settings, "DEFAULT_THROTTLE_RATES", None) or {}
        return rates.get(str(self.scope))

    def __init__(self) -> None:
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)  # type: ignore[assignment]


class ApiUserRateThrottle(_LiveRateThrottle):
    """The whole API: per user once authenticated (``RATE_LIMIT_USER``)."""

    scope = "user"

    def get_cache_key(self, request: Request, view: "APIView") -> str | None:
        if not (request.user and request.user.is_authenticated):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class ApiAnonRateThrottle(_LiveRateThrottle):
    """The whole API: per client IP for anonymous callers (``RATE_LIMIT_ANON``)."""

    scope = "anon"

    def get_cache_key(self, request: Request, view: "APIView") -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginIpThrottle(_LiveRateThrottle):
    """Login attempts per client IP (``RATE_LIMIT_LOGIN_IP``), successful or not."""

    scope = "login_ip"

    def get_cache_key(self, request: Request, view: "APIView") -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginAccountThrottle(_LiveRateThrottle):
    """Failed logins per account e-mail (``RATE_LIMIT_LOGIN_ACCOUNT``), whatever the IP.

    Only failures count: :meth:`allow_request` checks, :meth:`record_failure` counts one.
    """

    scope = "login_account"

    def get_cache_key(self, request: Request, view: "APIView") -> str | None:
        try:
            data = request.data
        except exceptions.ParseError:
            return None
        email = str(data.get("email", "")).strip().lower() if isinstance(data, dict) else ""
        if not email:
            return None
        ident = hashlib.sha256(email.encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request: Request, view: "APIView") -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - (self.duration or 0):
            self.history.pop()
        return len(self.history) < (self.num_requests or 0)

    def record_failure(self, request: Request, view: "APIView") -> None:
        if self.rate is None or not getattr(self, "key", None):
            return
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history, self.duration)


class UnauthenticatedIpThrottle(_LiveRateThrottle):
    """Per client IP, API requests refused for want of valid credentials (401), at the anonymous
    rate (``RATE_LIMIT_ANON``). DRF checks permissions before throttles, so without this a flood
    of requests with no or bad tokens would never meet a limit. Over it, the IP's requests that
    would be refused with 401 get 429 until the window passes; its requests with valid
    credentials are answered as usual. Used by :class:`ApiJsonErrorsMiddleware`."""

    scope = "anon"
    cache_format = "throttle_unauthenticated_%(ident)s"

    def check(self, request: HttpRequest) -> bool:
        if self.rate is None:
            return True
        self.key = self.cache_format % {"ident": self.get_ident(request)}  # type: ignore[arg-type]
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - (self.duration or 0):
            self.history.pop()
        return len(self.history) < (self.num_requests or 0)

    def record(self) -> None:
        if self.rate is None:
            return
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history, self.duration)

    def too_many(self) -> JsonResponse:
        wait = self.wait()
        response = _json_error(429, exceptions.Throttled.default_detail, "throttled")
        response["Retry-After"] = str(max(1, math.ceil(wait or 1)))
        return response


# --- Permissions -------------------------------------------------------------------------------


class IsAdminRole(permissions.BasePermission):
    """Only active users with the admin role."""

    message = _("Only administrators can do this.")

    def has_permission(self, request: Request, view: "APIView") -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_admin)


class IsSupervisorOrAdmin(permissions.BasePermission):
    """Admins and supervisors (they see every conversation and the metrics)."""

    message = _("Only supervisors and administrators can do this.")

    def has_permission(self, request: Request, view: "APIView") -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.sees_everything)


class AdminWriteAuthenticatedRead(permissions.BasePermission):
    """Everyone signed in reads; only admins write (departments, bot configuration)."""

    message = IsAdminRole.message

    def has_permission(self, request: Request, view: "APIView") -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        return request.method in permissions.SAFE_METHODS or user.is_admin


def client_ip(request: HttpRequest | Request) -> str | None:
    """The caller's IP as the throttles see it (honours ``NUM_PROXIES``)."""
    ident = BaseThrottle().get_ident(request)  # type: ignore[arg-type]
    try:
        return str(ipaddress.ip_address(ident.strip()))
    except (ValueError, AttributeError):
        return None


# --- Routes ------------------------------------------------------------------------------------


def api_path(route: str, view: Any, name: str) -> list[URLPattern]:
    """``route`` answered with and without a trailing slash (contract §4); only the bare one is
    named and appears in the schema."""
    route = route.rstrip("/")
    return [path(route, view, name=name), path(f"{route}/", view)]


def schema_without_slash_twins(endpoints: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """drf-spectacular preprocessing hook: drop the ``.../`` twin of every ``...`` path."""
    bare = {endpoint[0] for endpoint in endpoints}
    return [e for e in endpoints if not (e[0].endswith("/") and e[0].rstrip("/") in bare)]


class JsonErrorsMixin:
    """For views whose renderers are not JSON (schema, docs): errors are still JSON."""

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        if isinstance(response, Response) and response.status_code >= 400:
            from rest_framework.renderers import JSONRenderer  # noqa: PLC0415

            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
