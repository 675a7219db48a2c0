"""Webhook intake: check the signature on the raw bytes, store the delivery, queue processing.

Only what is strictly needed happens in the request (HMAC, JSON check, one INSERT): Meta wants a
fast ``200``; the work happens in :func:`whatsapp.tasks.webhook_process`.
"""

import hashlib
import hmac
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.core.cache import cache
from django.db import InterfaceError, OperationalError, transaction

from common.breaker import BROKER, DATABASE
from whatsapp.metrics import webhook_delivery_counted
from whatsapp.models import WebhookEvent, WebhookStatus

from .accounts import app_secret

logger = logging.getLogger(__name__)


class SignatureError(Exception):
    """Missing or wrong ``X-Hub-Signature-256``: refuse, store nothing."""


class PayloadError(Exception):
    """Signed, but not a JSON object."""


def sign(raw_body: bytes, *, secret: str | None = None) -> str:
    """The ``X-Hub-Signature-256`` header value Meta would send for ``raw_body``."""
    key = (secret if secret is not None else app_secret()).encode()
    return "sha256=" + hmac.new(key, raw_body, hashlib.sha256).hexdigest()


def signature_is_valid(raw_body: bytes, header: str) -> bool:
    secret = app_secret()
    if not secret or not header:
        return False
    return hmac.compare_digest(sign(raw_body, secret=secret).encode(), header.strip().encode())


def _first_phone_number_id(payload: dict[str, Any]) -> str:
    for entry in payload.get("entry") or []:
        for change in (entry or {}).get("changes") or [] if isinstance(entry, dict) else []:
            value = (change or {}).get("value") if isinstance(change, dict) else None
            if isinstance(value, dict):
                metadata = value.get("metadata") or {}
                if isinstance(metadata, dict) and metadata.get("phone_number_id"):
                    return str(metadata["phone_number_id"])[:64]
    return ""


def _storable(raw_body: bytes) -> str:
    """Bytes that are not UTF-8 text, kept readable: undecodable bytes as ``\\xNN`` escapes,
    and NUL (which PostgreSQL refuses in text) as ``\\x00``."""
    return raw_body.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")


def webhook_receive(*, raw_body: bytes, signature: str, queue: bool = True) -> WebhookEvent:
    """Verify and durably store one delivery; processing is queued once the row is committed.

    Raises :class:`SignatureError` (nothing stored) or :class:`PayloadError`: signed but not a
    UTF-8 JSON object (stored as ``unknown``, with the reason, for a person to look at).
    Database errors propagate: the view answers 503 so that Meta delivers again.
    ``queue=False`` leaves queueing to the caller (:func:`webhook_queue`), as the view does.
    The parsed ``payload`` is filled in by the processing task: one plain INSERT here.
    """
    if not signature_is_valid(raw_body, signature):
        raise SignatureError
    try:
        text = raw_body.decode("utf-8")  # Meta sends UTF-8; json.loads would also take UTF-16
        payload = json.loads(text)
        if not isinstance(payload, dict):
            raise ValueError("the body is not a JSON object")
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # Signed by Meta yet not understood: kept (and listed as not understood) for a person
        # to look at, answered 400 so that Meta does not retry it for a week.
        reason = "nested too deep" if isinstance(exc, RecursionError) else str(exc)
        WebhookEvent.objects.create(
            raw_body=_storable(raw_body),
            signature=signature[:100],
            status=WebhookStatus.UNKNOWN,
            error=f"unparseable: {reason}"[:1000],
        )
        raise PayloadError(reason) from exc
    event = WebhookEvent.objects.create(
        raw_body=text,
        signature=signature[:100],
        phone_number_id=_first_phone_number_id(payload),
    )
    if queue:
        event_id = event.pk
        transaction.on_commit(lambda: webhook_queue(event_id))
    return event


@dataclass(frozen=True)
class IntakeAnswer:
    """What the webhook answers Meta for one POST."""

    status: int
    text: str


def webhook_accept(*, raw_body: bytes, signature: str) -> IntakeAnswer:
    """One delivery from the wire: store it and hand it to the workers, or say why not.

    ``403`` bad signature (nothing stored), ``400`` not a UTF-8 JSON object (kept as not
    understood), ``503`` when
    the database cannot take it (Meta delivers it again), else ``200``. Shared by the Django view
    and the ASGI endpoint (:mod:`whatsapp.asgi`) so that both answer alike.

    While the database is known to be down (:data:`common.breaker.DATABASE`), the answer is 503 at
    once, without waiting ``DB_POOL_TIMEOUT`` for a connection: one delivery at a time tries it.
    """
    if not DATABASE.allow():
        webhook_delivery_counted("unavailable")
        return IntakeAnswer(503, "temporarily unavailable")
    try:
        event = webhook_receive(raw_body=raw_body, signature=signature, queue=False)
    except SignatureError:
        DATABASE.succeeded()
        webhook_delivery_counted("bad_signature")
        return IntakeAnswer(403, "invalid signature")
    except PayloadError:
        DATABASE.succeeded()
        webhook_delivery_counted("bad_json")
        return IntakeAnswer(400, "invalid JSON")
    except Exception as exc:
        # Database (or pool) unavailable: not stored, so Meta must deliver it again.
        if isinstance(exc, OperationalError | InterfaceError):
            DATABASE.failed()
        else:
            DATABASE.succeeded()
        if DATABASE.is_open:
            logger.warning("could not store a webhook delivery (answered 503): %s", exc)
        else:
            logger.exception("could not store a webhook delivery")
        webhook_delivery_counted("unavailable")
        return IntakeAnswer(503, "temporarily unavailable")
    DATABASE.succeeded()
    webhook_delivery_counted("stored")
    webhook_queue(event.pk)  # the row is committed (autocommit)
    _burst_count()
    return IntakeAnswer(200, f"ok {event.pk}")


#: Set while the webhook takes a burst (``INTAKE_BURST_RATE`` deliveries or more within a second
#: in one process), for ``INTAKE_BURST_TTL`` seconds: searches then take turns
#: (``settings.SEARCH_YIELD_TO``), so a storm of them never starves the acknowledgements.
INTAKE_BURST_KEY = "whatsapp:intake-burst"
INTAKE_BURST_TTL = 2
INTAKE_BURST_RATE = 50
INTAKE_BURST_REMARK = 0.5  # seconds between two marks of one process during a burst
_burst_recent: deque[float] = deque(maxlen=INTAKE_BURST_RATE)  # this process's latest acks
_burst_marked_at = -INTAKE_BURST_REMARK


def _burst_count() -> None:
    """Note the delivery's time; when this process's last ``INTAKE_BURST_RATE`` deliveries all
    came within a second, mark the burst (one Redis ``SET`` per process every half second at
    most during a burst; none in a quiet hour). So a burst is known from its 50th delivery, not
    from the next full second. Races between threads only misplace a timestamp."""
    global _burst_marked_at  # noqa: PLW0603 - a per-process hint, not shared state
    now = time.monotonic()
    recent = _burst_recent
    recent.append(now)
    if len(recent) < INTAKE_BURST_RATE or now - recent[0] > 1.0:
        return
    if now - _burst_marked_at < INTAKE_BURST_REMARK:
        return
    _burst_marked_at = now
    try:
        cache.set(INTAKE_BURST_KEY, 1, timeout=INTAKE_BURST_TTL)
    except Exception:  # the acknowledgement never depends on the hint
        logger.warning("could not mark the webhook's burst", exc_info=True)


def webhook_intake_burst() -> bool:
    """Is the webhook taking a burst of deliveries now (``INTAKE_BURST_RATE`` a second or more
    in a process, within the last ``INTAKE_BURST_TTL`` s)? An unreachable cache says no."""
    try:
        return cache.get(INTAKE_BURST_KEY) is not None
    except Exception:
        return False


# Set while a drain task is queued and has not started: the deliveries stored meanwhile need no
# task of their own (the drain takes every ``received`` row). Expires in case a task is lost.
DRAIN_PENDING_KEY = "whatsapp:webhook-drain-pending"
DRAIN_PENDING_TTL = 5
# A process that saw a drain pending less than this ago does not ask Redis again; the drain looks
# once more this long after it found nothing, so a delivery stored meanwhile is still its own.
DRAIN_LINGER = 0.25
_drain_seen_until = 0.0  # time.monotonic() of this process


def webhook_queue(event_id: int) -> None:
    """Hand the stored delivery to the workers.

    With a broker, one ``webhook_drain`` task serves every delivery stored before it starts (a
    Redis ``SET NX`` decides who publishes it), so the request does not pay a publish each. In
    embedded mode (eager tasks) the delivery is processed at once. A broker outage must not lose
    it: the row stays ``received`` and the periodic drain (or ``manage.py replay_webhooks
    --status received``) picks it up.
    """
    from whatsapp.tasks import webhook_process  # noqa: PLC0415 - tasks import services

    if current_app.conf.task_always_eager:
        try:
            webhook_process.delay(event_id)
        except Exception:
            logger.exception("webhook event %s failed; it stays for a retry", event_id)
        return
    webhook_drain_wake()


def webhook_drain_wake(*, force: bool = False) -> None:
    """Queue a ``webhook_drain`` unless one is queued already and has not started.

    Costs one Redis ``SET NX`` at most every :data:`DRAIN_LINGER` seconds per process: within
    that time the drain that was pending is sure to look for work again after this delivery.
    ``force``: a drain handing over to the next one asks Redis whatever its hint says.

    While Redis is known to be down (:data:`common.breaker.BROKER`) nothing is tried: the
    delivery stays ``received``, and the first publish that succeeds again (the next delivery's,
    or beat's periodic drain) queues a drain that takes every delivery stored meanwhile.
    """
    global _drain_seen_until  # noqa: PLW0603 - a per-process hint, not shared state
    from whatsapp.tasks import webhook_drain  # noqa: PLC0415 - tasks import services

    now = time.monotonic()
    if now < _drain_seen_until and not force:
        return
    if not BROKER.allow():
        return
    try:
        if cache.add(DRAIN_PENDING_KEY, 1, timeout=DRAIN_PENDING_TTL):
            try:
                webhook_drain.delay()
            except Exception:
                cache.delete(DRAIN_PENDING_KEY)
                raise
        _drain_seen_until = now + DRAIN_LINGER
    except Exception:
        was_down = BROKER.is_open
        BROKER.failed()
        if not was_down:
            logger.exception("could not queue the webhook drain; deliveries stay 'received'")
        return
    BROKER.succeeded()


# The broker answers again (any publish of this process succeeded): one drain takes whatever was
# stored meanwhile, without waiting for beat's periodic one.
BROKER.on_recovery(lambda: webhook_drain_wake(force=True))


#: Set by a drain when it starts and after each turn that stored deliveries, for a turn's
#: length and a second (``whatsapp.tasks.DRAIN_TURN_SECONDS`` is 2): the intake is busy.
INTAKE_BUSY_KEY = "whatsapp:intake-busy"
INTAKE_BUSY_TTL = 3


def webhook_intake_mark_busy() -> None:
    """Called by the drain when it starts, and after each turn that stored deliveries."""
    cache.set(INTAKE_BUSY_KEY, 1, timeout=INTAKE_BUSY_TTL)


def webhook_intake_busy() -> bool:
    """Is a burst of deliveries being stored (a drain ran within the last 3 s)? Less urgent
    work (outgoing webhooks, ``settings.OUTGOING_WEBHOOKS_YIELD_TO``) waits for it. An
    unreachable cache says no."""
    return cache.get(INTAKE_BUSY_KEY) is not None


def webhook_drain_started() -> None:
    """Called by the drain before it looks for work: later deliveries queue a new drain."""
    cache.delete(DRAIN_PENDING_KEY)
