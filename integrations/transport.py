"""POST to the addresses that were checked, not to whatever the name resolves to a moment later.

:func:`integrations.addresses.url_resolve_public` resolves and checks the receiver's host; the
connection then goes to one of those addresses (the next one if it refuses), with the original
name kept where it matters: the ``Host`` header, and for https the TLS server name (SNI) and the
certificate check. A DNS answer that changes between the check and the connection (rebinding)
therefore never reaches a private address.
"""

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter


class _PinnedAdapter(HTTPAdapter):
    """Connects to the URL's address (an IP) and speaks TLS as ``hostname``."""

    def __init__(self, *, hostname: str) -> None:
        self._hostname = hostname
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(  # type: ignore[override]
        self, request: Any, verify: Any, cert: Any = None
    ) -> tuple[Any, dict[str, Any]]:
        host_params, typed_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        pool_kwargs: dict[str, Any] = dict(typed_kwargs)
        if host_params["scheme"] == "https":
            # urllib3 pool keys: TLS as the name, on a connection to the address.
            pool_kwargs["server_hostname"] = self._hostname
            pool_kwargs["assert_hostname"] = self._hostname
        return host_params, pool_kwargs


def _at(parts: SplitResult, address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@" if userinfo else ""
    netloc += host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


class PinnedSession:
    """A :class:`requests.Session` whose connections go only to the addresses given for each
    POST (the checked ones), kept open between POSTs to the same receiver (a batch of
    deliveries reuses one connection). Use it as a context manager."""

    def __init__(self) -> None:
        self._session = requests.Session()
        self._adapters: dict[str, _PinnedAdapter] = {}

    def __enter__(self) -> "PinnedSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self._session.close()
        for adapter in self._adapters.values():
            adapter.close()

    def _mount(self, hostname: str) -> None:
        # One adapter per receiver name: its TLS name is part of the pooled connection's key.
        adapter = self._adapters.get(hostname)
        if adapter is None:
            adapter = self._adapters[hostname] = _PinnedAdapter(hostname=hostname)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    @contextlib.contextmanager
    def post(
        self,
        url: str,
        *,
        addresses: list[str],
        data: bytes,
        headers: dict[str, str],
        timeout: float,
    ) -> Iterator[requests.Response]:
        """``requests.post(url, ...)`` (no redirects followed, the body streamed), connecting
        only to ``addresses``, tried in order while they refuse the connection."""
        parts = urlsplit(url)
        hostname = parts.hostname or ""
        host_header = parts.netloc.rpartition("@")[2]
        pinnable = [a for a in addresses if "%" not in a] or [hostname]  # scoped IPv6: by name
        self._mount(hostname)
        last: Exception | None = None
        for address in pinnable:
            try:
                response = self._session.post(
                    _at(parts, address) if address != hostname else url,
                    data=data,
                    headers={**headers, "Host": host_header},
                    timeout=(timeout, timeout),
                    allow_redirects=False,
                    stream=True,
                )
            except requests.ConnectionError as exc:
                if isinstance(exc, requests.Timeout) or address == pinnable[-1]:
                    raise
                last = exc
                continue
            with response:
                yield response
            return
        if last is not None:  # pragma: no cover - the loop raises on its last address
            raise last


@contextlib.contextmanager
def post_pinned(
    url: str, *, addresses: list[str], data: bytes, headers: dict[str, str], timeout: float
) -> Iterator[requests.Response]:
    """One POST on a session of its own (:meth:`PinnedSession.post`)."""
    with (
        PinnedSession() as session,
        session.post(
            url, addresses=addresses, data=data, headers=headers, timeout=timeout
        ) as response,
    ):
        yield response
