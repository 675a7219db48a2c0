"""Business numbers: the env-configured one is provisioned automatically."""

from django.conf import settings
from django.db import IntegrityError, transaction

from whatsapp.models import WhatsAppAccount

# The phone number id the sandbox uses when ``WHATSAPP_PHONE_NUMBER_ID`` is unset.
SANDBOX_PHONE_NUMBER_ID = "100000000000000"
# The app secret the sandbox signs with when ``WHATSAPP_APP_SECRET`` is unset (sandbox only).
SANDBOX_APP_SECRET = "sandbox-app-secret"  # noqa: S105 - only accepted while the sandbox is on


def default_phone_number_id() -> str:
    return settings.WHATSAPP_PHONE_NUMBER_ID or SANDBOX_PHONE_NUMBER_ID


def app_secret() -> str:
    """The key of ``X-Hub-Signature-256``; empty means every delivery is refused."""
    if settings.WHATSAPP_APP_SECRET:
        return str(settings.WHATSAPP_APP_SECRET)
    return SANDBOX_APP_SECRET if settings.SANDBOX_ENABLED else ""


def account_get_default() -> WhatsAppAccount:
    """The env-configured number (or the sandbox number), created on first use."""
    phone_number_id = default_phone_number_id()
    account = WhatsAppAccount.objects.filter(phone_number_id=phone_number_id).first()
    if account is not None:
        return account
    try:
        with transaction.atomic():
            return WhatsAppAccount.objects.create(
                name="WhatsApp" if settings.WHATSAPP_PHONE_NUMBER_ID else "Sandbox",
                phone_number_id=phone_number_id,
            )
    except IntegrityError:
        return WhatsAppAccount.objects.get(phone_number_id=phone_number_id)


def account_for_phone_number_id(phone_number_id: str) -> WhatsAppAccount | None:
    """The active account for a webhook's ``metadata.phone_number_id``; None when unknown."""
    if not phone_number_id:
        return None
    account = WhatsAppAccount.objects.filter(
        phone_number_id=phone_number_id, is_active=True
    ).first()
    if account is None and phone_number_id == default_phone_number_id():
        account = account_get_default()
    return account


def account_token(account: WhatsAppAccount) -> str:
    """The bearer token for this number; empty means the sandbox transport."""
    return account.access_token or str(settings.WHATSAPP_ACCESS_TOKEN or "")
