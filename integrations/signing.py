"""The signature of everything the desk POSTs to the outside (contract §8): webhook deliveries and
the bot's ``http`` node.

``X-SupportDesk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``, keyed with
the subscription's secret. Signing the timestamp with the body lets a receiver refuse replays of
an old request (:func:`verify`'s ``tolerance``).
"""

import hashlib
import hmac
import time

HEADER = "X-SupportDesk-Signature"
#: How old a signed request a receiver accepts by default, in seconds.
DEFAULT_TOLERANCE = 300


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-SupportDesk-Signature`` header value for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    tolerance: int | None = DEFAULT_TOLERANCE,
    now: int | None = None,
) -> bool:
    """Whether ``header`` is a valid signature of ``body`` with ``secret``, made at most
    ``tolerance`` seconds from ``now`` (``None``: any age). Several ``v1`` values are accepted
    (one of them must match), so a secret can be rotated without a gap."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _sep, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if tolerance is not None:
        current = int(time.time()) if now is None else now
        if abs(current - timestamp) > tolerance:
            return False
    expected = _digest(secret, body, timestamp)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
