"""Password guessing on the session login forms (console ``/login/`` and ``/admin/login/``).

Failed attempts are counted in the cache (Redis in production, so every server process shares
them) in fixed windows, under three keys:

- the account from this IP (``LOGIN_FAILURES_ACCOUNT_IP``, 5 per 15 minutes by default): what
  stops a guesser, while the real user, elsewhere, can still sign in;
- the account from anywhere (``LOGIN_FAILURES_ACCOUNT``, 100 per hour): a much higher ceiling
  for a guesser spread over many IPs; an attacker would need a hundred failures an hour to keep
  the victim out, and even then only until the window ends;
- this IP, whatever the account (``LOGIN_FAILURES_IP``, 50 per 15 minutes): credential
  stuffing over many accounts from one address.

A successful sign-in clears the account+IP counter. Every refusal is written to the audit log.
"""

import hashlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from .models import AuditAction
from .services import audit_log_record

KEY_PREFIX = "login-fail"


@dataclass(frozen=True)
class _Limit:
    name: str
    setting: str
    default: tuple[int, int]  # failures, window in seconds


LIMITS = (
    _Limit("account_ip", "LOGIN_FAILURES_ACCOUNT_IP", (5, 15 * 60)),
    _Limit("account", "LOGIN_FAILURES_ACCOUNT", (100, 60 * 60)),
    _Limit("ip", "LOGIN_FAILURES_IP", (50, 15 * 60)),
)


def _rate(limit: _Limit) -> tuple[int, int]:
    failures, window = getattr(settings, limit.setting, limit.default)
    return int(failures), int(window)


def _ident(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _keys(*, email: str, ip: str | None) -> dict[str, str]:
    """The cache key of each limit for this attempt, inside the current window."""
    account = _ident(email.strip().lower())
    address = _ident(ip or "unknown")
    idents = {"account_ip": f"{account}:{address}", "account": account, "ip": address}
    now = int(time.time())
    keys = {}
    for limit in LIMITS:
        _, window = _rate(limit)
        keys[limit.name] = f"{KEY_PREFIX}:{limit.name}:{idents[limit.name]}:{now // window}"
    return keys


def login_wait_seconds(*, email: str, ip: str | None) -> int:
    """Seconds until this account may try again from this IP; 0 when it may try now."""
    keys = _keys(email=email, ip=ip)
    counts = cache.get_many(list(keys.values()))
    now = time.time()
    wait = 0
    for limit in LIMITS:
        failures, window = _rate(limit)
        if int(counts.get(keys[limit.name], 0)) >= failures:
            wait = max(wait, math.ceil(window - now % window))
    return wait


def login_failure_record(*, email: str, ip: str | None) -> None:
    """Count one failed attempt under every limit (atomic increments, shared by all processes)."""
    keys = _keys(email=email, ip=ip)
    for limit in LIMITS:
        key = keys[limit.name]
        _, window = _rate(limit)
        if not cache.add(key, 1, timeout=window):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, timeout=window)


def login_success_record(*, email: str, ip: str | None) -> None:
    """The real user got in from here: this account's failures from this IP are forgotten."""
    cache.delete(_keys(email=email, ip=ip)["account_ip"])


def login_refusal_audit(*, email: str, ip: str | None, via: str, wait: int) -> None:
    audit_log_record(
        actor=None,
        action=AuditAction.LOGIN_THROTTLED,
        target_repr=email[:254],
        after={"email": email[:254], "via": via, "retry_after": wait},
        ip=ip,
    )
