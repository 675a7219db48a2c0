"""Where the desk may POST (SSRF guard): http(s) URLs whose host resolves only to public addresses.

Loopback, private, link-local, multicast, reserved and unspecified addresses are refused unless
``settings.OUTGOING_WEBHOOKS_ALLOW_PRIVATE`` (a receiver on the same host or network, tests).
The check runs when a subscription is saved and again right before every delivery, whose
connection then goes to exactly the addresses checked (``integrations.transport``: no DNS
rebinding between the check and the connection).
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _

SCHEMES = frozenset({"http", "https"})


class UnsafeAddress(ValueError):  # noqa: N818 - reads better at call sites
    """The URL may not be called; the message says why (safe to show)."""


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def url_check_scheme(url: str) -> tuple[str, int]:
    """The host and port of an http(s) URL; :class:`UnsafeAddress` for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeAddress(_("Enter a valid URL.")) from exc
    if parts.scheme.lower() not in SCHEMES:
        raise UnsafeAddress(_("Only http and https URLs can receive webhooks."))
    if not parts.hostname:
        raise UnsafeAddress(_("Enter a valid URL."))
    return parts.hostname, port or (443 if parts.scheme.lower() == "https" else 80)


def url_resolve_public(url: str) -> list[str]:
    """The addresses ``url``'s host resolves to, all of them allowed; :class:`UnsafeAddress`
    when the scheme is not http(s), the host does not resolve, or any address is refused."""
    host, port = url_check_scheme(url)
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeAddress(_("The host %(host)s could not be resolved.") % {"host": host}) from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if settings.OUTGOING_WEBHOOKS_ALLOW_PRIVATE:
        return addresses
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if _forbidden(address):
            raise UnsafeAddress(
                _(
                    "%(host)s resolves to %(address)s, a private or reserved address: "
                    "webhooks are not delivered there."
                )
                % {"host": host, "address": text}
            )
    return addresses
