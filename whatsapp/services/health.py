"""The channel's health bookkeeping and its alerts to the admins (by e-mail, ``ADMINS``).

- Each number remembers its last successful send, its last refusal and its last token error
  (:class:`~whatsapp.models.WhatsAppAccount`), shown by ``/health`` and the admin. A success is
  written at most every :data:`SENT_NOTE_EVERY` seconds per process: a busy number costs one
  UPDATE now and then, not one per message.
- Alerts go out once per incident: a token refusal once per number until a message gets through
  again (the number's ``token_error_at`` is the incident's start); an intake lag over
  ``INTAKE_LAG_ALERT_SECONDS`` once until the lag is back under it (:func:`intake_lag_check`, a
  beat task every minute; the incident's mark lives in the cache, Redis in production).
"""

import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.core.mail import mail_admins
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from whatsapp.models import WhatsAppAccount
from whatsapp.selectors import webhook_intake_lag

logger = logging.getLogger(__name__)

SENT_NOTE_EVERY = 30.0
INTAKE_LAG_INCIDENT_KEY = "whatsapp:alert:intake-lag"
#: An incident mark outlives any lag check interval by far; it is deleted when the lag is over.
INCIDENT_TTL = 7 * 24 * 3600

_sent_noted: dict[int, float] = {}  # account id -> time.monotonic() of this process's last note


def account_sent_note(*, account_id: int | None) -> None:
    """A message got through on this number (written at most every SENT_NOTE_EVERY s)."""
    if account_id is None:
        return
    now = time.monotonic()
    if now - _sent_noted.get(account_id, float("-inf")) < SENT_NOTE_EVERY:
        return
    _sent_noted[account_id] = now
    WhatsAppAccount.objects.filter(pk=account_id).update(last_sent_at=timezone.now())


def account_send_error_note(*, account_id: int | None, code: int | None, reason: str) -> None:
    if account_id is None:
        return
    WhatsAppAccount.objects.filter(pk=account_id).update(
        last_send_error_at=timezone.now(), last_send_error_code=code, last_send_error=reason[:255]
    )


def _mail_admins(subject: str, body: str) -> bool:
    try:
        mail_admins(subject, body)
    except Exception:
        logger.exception("could not e-mail the admins")
        return False
    return True


def account_token_error_alert(*, account: WhatsAppAccount, code: int | None, reason: str) -> bool:
    """Meta refused this number's token or a permission. The first refusal of an incident (none
    since the last message that got through) is noted and e-mailed to the admins; the rest of
    the incident only logged. Returns whether a mail was sent."""
    logger.error("WhatsApp token/permission error for %s: %s %s", account, code, reason)
    _sent_noted.pop(account.pk, None)  # the next success ends the incident at once
    started = (
        WhatsAppAccount.objects.filter(pk=account.pk)
        .filter(
            Q(token_error_at__isnull=True)
            | Q(last_sent_at__isnull=False, last_sent_at__gt=F("token_error_at"))
        )
        .update(token_error_at=timezone.now())
    )
    if not started:
        return False
    return _mail_admins(
        _("WhatsApp: access token or permission error on %(number)s") % {"number": account},
        _(
            "Meta refused a message with code %(code)s: %(reason)s\n"
            "Renew the access token (WhatsApp numbers in the admin, or WHATSAPP_ACCESS_TOKEN).\n"
            "You will not be e-mailed again about this number until a message gets through."
        )
        % {"code": code, "reason": reason},
    )


def intake_lag_check() -> bool | None:
    """Beat, every minute: e-mail the admins when the oldest delivery not yet processed has
    waited longer than ``INTAKE_LAG_ALERT_SECONDS`` (once per incident; the incident ends when
    the lag is back under the threshold). Returns True when a mail went out, False when the lag
    is over but the admins were told already, None when all is well."""
    threshold = float(settings.INTAKE_LAG_ALERT_SECONDS)
    if threshold <= 0:
        return None
    lag = webhook_intake_lag()
    if lag.seconds <= threshold:
        if cache.get(INTAKE_LAG_INCIDENT_KEY):
            cache.delete(INTAKE_LAG_INCIDENT_KEY)
            logger.warning(
                "webhook intake lag back to %.0f s (threshold %.0f s)", lag.seconds, threshold
            )
        return None
    logger.error(
        "webhook intake lag %.0f s over %.0f s (%d deliveries waiting)",
        lag.seconds,
        threshold,
        lag.pending,
    )
    if not cache.add(INTAKE_LAG_INCIDENT_KEY, timezone.now().isoformat(), timeout=INCIDENT_TTL):
        return False
    return _mail_admins(
        _("WhatsApp: incoming messages are %(minutes)s minutes behind")
        % {"minutes": int(lag.seconds // 60)},
        _(
            "The oldest delivery from Meta not processed yet arrived %(seconds)s seconds ago "
            "(alert threshold: %(threshold)s seconds); %(pending)s deliveries are waiting.\n"
            "Check that the Celery workers are running and can reach Redis and PostgreSQL "
            "(docs/operations.md). You will not be e-mailed again until the lag is back under "
            "the threshold."
        )
        % {"seconds": int(lag.seconds), "threshold": int(threshold), "pending": lag.pending},
    )
