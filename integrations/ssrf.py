"""Outgoing requests go to the public internet only (contract §8), unless
``OUTGOING_WEBHOOKS_ALLOW_PRIVATE`` says otherwise (checked by the caller)."""

import ipaddress
import socket
from urllib.parse import urlsplit


def url_is_public(url: str) -> bool:
    """An http(s) URL whose host resolves only to public addresses (no loopback, private,
    link-local, reserved or multicast one). Unresolvable hosts are not public."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    try:
        infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0] for info in infos}
    for address in addresses:
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast:
            return False
    return bool(addresses)
