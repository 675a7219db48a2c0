"""The signature of every request SupportDesk sends out (contract §8).

``X-SupportDesk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``: the
receiver recomputes the HMAC with its secret over the timestamp and the exact bytes it got.
"""

import hashlib
import hmac


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-SupportDesk-Signature`` header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
