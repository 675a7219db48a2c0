"""The one HTTP client for Meta's Graph API (``requests``), and Meta's error classification.

Errors are classified by Meta's ``error.code``, never by the HTTP status: rate limits come back as
HTTP 400 with code 130429 (see ``docs/whatsapp.md`` and Meta's error-code table).
Only the origins (scheme, host, port) of ``WHATSAPP_API_URL`` and ``WHATSAPP_MEDIA_HOSTS`` are
ever fetched, redirects are not
followed: a URL inside a payload cannot make us fetch anything else (no SSRF).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings

logger = logging.getLogger(__name__)


class ErrorKind(StrEnum):
    RETRY = "retry"  # transient or rate limited: retry with backoff and jitter
    PAIR = "pair"  # too many messages to this customer: back off for that customer
    WINDOW = "window"  # outside the 24-hour window: never retry free-form, offer a template
    TOKEN = "token"  # noqa: S105 - token invalid/expired or permission missing: fail and alert admins
    FAIL = "fail"  # everything else: fail and show Meta's reason
    AMBIGUOUS = "ambiguous"  # no answer after sending: Meta may or may not have accepted it


RETRYABLE_CODES = frozenset({130429, 4, 80007, 131000, 131016, 131057, 1, 2, 133004})
TOKEN_CODES = frozenset({0, 190, 10})


def classify(code: int | None, http_status: int | None = None) -> ErrorKind:
    """What to do about a Graph API error, by Meta's ``error.code``."""
    if code == 131056:
        return ErrorKind.PAIR
    if code == 131047:
        return ErrorKind.WINDOW
    if code in RETRYABLE_CODES:
        return ErrorKind.RETRY
    if code in TOKEN_CODES or (code is not None and 200 <= code <= 299):
        return ErrorKind.TOKEN
    if code is None and http_status is not None and http_status >= 500:
        return ErrorKind.RETRY  # a 5xx without Meta's error body (proxy, outage)
    return ErrorKind.FAIL


@dataclass
class GraphError(Exception):
    """A refusal by the Graph API (or no usable answer at all)."""

    message: str
    code: int | None = None
    http_status: int | None = None
    title: str = ""
    details: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    kind: ErrorKind = ErrorKind.FAIL

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}" if self.code is not None else self.message

    @property
    def reason(self) -> str:
        """A human-readable reason: Meta's message plus its details."""
        parts = [self.title or self.message]
        if self.details and self.details not in parts:
            parts.append(self.details)
        return " — ".join(p for p in parts if p)


class UnsafeURLError(ValueError):
    """A URL outside the allowed hosts (Graph API and Meta's media hosts)."""


_DEFAULT_PORTS = {"https": 443, "http": 80}


def _origin(scheme: str, host: str, port: int | None) -> tuple[str, str, int]:
    scheme = scheme.lower()
    return scheme, host.lower(), port if port is not None else _DEFAULT_PORTS.get(scheme, -1)


def allowed_origins() -> set[tuple[str, str, int]]:
    """Where media may come from: the Graph API's own origin (scheme, host and port of
    ``WHATSAPP_API_URL``) and each ``WHATSAPP_MEDIA_HOSTS`` entry — a bare host means
    ``https://host:443``; ``https://host:port`` names another port."""
    api = urlsplit(settings.WHATSAPP_API_URL)
    origins = {_origin(api.scheme, api.hostname or "", api.port)}
    for entry in getattr(settings, "WHATSAPP_MEDIA_HOSTS", []):
        if "://" in entry:
            parts = urlsplit(entry)
            origins.add(_origin(parts.scheme, parts.hostname or "", parts.port))
        else:
            origins.add(_origin("https", entry, None))
    return origins


def check_url(url: str) -> str:
    """Refuse any URL whose scheme, host and port are not the Graph API's or a Meta media
    host's (``https://lookaside.fbsbx.com:8080/…`` is refused like any other host)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a port that is no number, or out of range
        raise UnsafeURLError("malformed URL") from exc
    if parts.username or parts.password:
        raise UnsafeURLError("credentials in URLs are refused")
    origin = _origin(parts.scheme, parts.hostname or "", port)
    if origin not in allowed_origins():
        raise UnsafeURLError(f"{origin[0]}://{origin[1]}:{origin[2]} is not an allowed origin")
    return url


def _timeout() -> tuple[float, float]:
    return (
        float(getattr(settings, "WHATSAPP_CONNECT_TIMEOUT", 5)),
        float(getattr(settings, "WHATSAPP_READ_TIMEOUT", 30)),
    )


def _error_from_response(response: requests.Response) -> GraphError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return GraphError(
            f"HTTP {response.status_code}",
            http_status=response.status_code,
            kind=classify(None, response.status_code),
        )
    code = error.get("code")
    code = int(code) if isinstance(code, int | str) and str(code).lstrip("-").isdigit() else None
    error_data = error.get("error_data") or {}
    return GraphError(
        str(error.get("message") or f"HTTP {response.status_code}"),
        code=code,
        http_status=response.status_code,
        title=str(error.get("error_user_title") or error.get("title") or ""),
        details=str(error_data.get("details", "")) if isinstance(error_data, dict) else "",
        data=error,
        kind=classify(code, response.status_code),
    )


class GraphClient:
    """Calls to ``{WHATSAPP_API_URL}`` with the bearer token of one business number."""

    def __init__(self, *, token: str, base_url: str | None = None) -> None:
        self.token = token
        self.base_url = (base_url or settings.WHATSAPP_API_URL).rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def _request(self, method: str, url: str, *, sent: bool = True, **kwargs: Any) -> Any:
        """One request; ``GraphError`` on refusal.

        ``sent`` tells whether a request that got no answer may have been acted upon by Meta
        (a POST to ``/messages``): then the error is ambiguous, never retried automatically.
        """
        check_url(url)
        try:
            response = self.session.request(
                method, url, timeout=_timeout(), allow_redirects=False, **kwargs
            )
        except requests.ConnectTimeout as exc:
            raise GraphError(f"network error: {exc}", kind=ErrorKind.RETRY) from exc
        except requests.ConnectionError as exc:
            # A refused or unresolvable connection never reached Meta: safe to retry. A connection
            # dropped after the request went out may have been acted upon.
            never_sent = any(n in repr(exc) for n in ("NewConnectionError", "NameResolution"))
            kind = ErrorKind.RETRY if never_sent or not sent else ErrorKind.AMBIGUOUS
            raise GraphError(f"network error: {exc}", kind=kind) from exc
        except requests.Timeout as exc:
            kind = ErrorKind.AMBIGUOUS if sent else ErrorKind.RETRY
            raise GraphError(f"Meta did not answer in time: {exc}", kind=kind) from exc
        if response.status_code >= 400:
            raise _error_from_response(response)
        if 300 <= response.status_code < 400:
            raise GraphError(f"unexpected redirect (HTTP {response.status_code})")
        return response

    def _json(self, response: requests.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError as exc:
            raise GraphError(
                "Meta answered something that is not JSON", kind=ErrorKind.RETRY
            ) from exc
        if not isinstance(data, dict):
            raise GraphError("Meta answered an unexpected JSON value", kind=ErrorKind.RETRY)
        return data

    def send(self, *, phone_number_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """``POST /{phone_number_id}/messages``; returns Meta's answer."""
        response = self._request(
            "POST", f"{self.base_url}/{phone_number_id}/messages", json=payload, sent=True
        )
        return self._json(response)

    def upload_media(
        self, *, phone_number_id: str, content: bytes, mime_type: str, filename: str
    ) -> str:
        """``POST /{phone_number_id}/media`` (multipart); returns the media id."""
        response = self._request(
            "POST",
            f"{self.base_url}/{phone_number_id}/media",
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (filename or "file", content, mime_type)},
            sent=False,
        )
        media_id = self._json(response).get("id")
        if not media_id:
            raise GraphError("Meta did not return a media id", kind=ErrorKind.RETRY)
        return str(media_id)

    def media_info(self, *, media_id: str) -> dict[str, Any]:
        """``GET /{media_id}`` → ``{url, mime_type, sha256, file_size, id}``."""
        if not media_id or "/" in media_id or "?" in media_id:
            raise GraphError(f"invalid media id {media_id!r}")
        return self._json(self._request("GET", f"{self.base_url}/{media_id}", sent=False))

    def download(self, *, url: str, max_bytes: int) -> bytes:
        """The bytes at ``url`` (an allowed host), refusing anything beyond ``max_bytes``."""
        check_url(url)
        try:
            response = self.session.get(url, timeout=_timeout(), allow_redirects=False, stream=True)
        except requests.RequestException as exc:
            raise GraphError(f"network error: {exc}", kind=ErrorKind.RETRY) from exc
        with response:
            if response.status_code >= 400:
                raise _error_from_response(response)
            if response.status_code != 200:
                raise GraphError(f"unexpected HTTP {response.status_code} for media")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise GraphError(f"media larger than {max_bytes} bytes")
            chunks, total = [], 0
            for chunk in response.iter_content(64 * 1024):
                total += len(chunk)
                if total > max_bytes:
                    raise GraphError(f"media larger than {max_bytes} bytes")
                chunks.append(chunk)
        return b"".join(chunks)

    def templates(self, *, waba_id: str) -> list[dict[str, Any]]:
        """Every message template of the WhatsApp Business account, following ``paging.next``."""
        url: str | None = f"{self.base_url}/{waba_id}/message_templates?limit=100"
        found: list[dict[str, Any]] = []
        for _page in range(100):  # bounded: 10,000 templates at most
            if not url:
                break
            data = self._json(self._request("GET", url, sent=False))
            found.extend(t for t in data.get("data", []) if isinstance(t, dict))
            url = (data.get("paging") or {}).get("next")
        return found


def sha256_matches(content: bytes, expected: str) -> bool:
    """Meta gives sha256 as hex (media endpoint) or base64 (some webhooks): accept either."""
    if not expected:
        return True
    digest = hashlib.sha256(content)
    return expected.lower() == digest.hexdigest() or expected == base64.b64encode(
        digest.digest()
    ).decode("ascii")
