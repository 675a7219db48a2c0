"""Message templates, synced from the Graph API (``GET /{waba_id}/message_templates``).

Only a synced template that Meta has ``APPROVED`` for the conversation's number is sent
(:func:`template_check`, called by ``outbound.outbound_validate``): anything else would come back
from Meta as a 132xxx error after the agent thought it was sent.
"""

import re
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from common.exceptions import ServiceError
from whatsapp.client import GraphClient
from whatsapp.models import MessageTemplate, WhatsAppAccount

from .accounts import account_token

# ``{{1}}`` (positional) or ``{{first_name}}`` (named parameters).
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


def template_body_text(template: MessageTemplate) -> str:
    """The text of the template's BODY component ("" when Meta sent none)."""
    for component in template.components or []:
        if isinstance(component, dict) and str(component.get("type", "")).upper() == "BODY":
            return str(component.get("text", ""))
    return ""


def template_placeholders(template: MessageTemplate) -> list[str]:
    """The body's parameters, each once, in order of appearance."""
    return list(dict.fromkeys(PLACEHOLDER.findall(template_body_text(template))))


def _state_label(status: str) -> str:
    labels = {
        "PENDING": _("pending review"),
        "REJECTED": _("rejected"),
        "PAUSED": _("paused"),
        "DISABLED": _("disabled"),
        "IN_APPEAL": _("in appeal"),
        "PENDING_DELETION": _("pending deletion"),
        "DELETED": _("deleted"),
    }
    return labels.get(status.upper(), status or _("unknown"))


def _body_parameter_count(payload: dict[str, Any]) -> int:
    return sum(
        len(component.get("parameters") or [])
        for component in payload.get("components") or []
        if isinstance(component, dict) and str(component.get("type", "")).lower() == "body"
    )


def template_check(*, account_id: int | None, payload: Any) -> MessageTemplate:
    """The synced, approved template Meta's ``template`` object names, or a clear ServiceError.

    Checks, for the conversation's WhatsApp number: the name and language are synced, Meta's
    status is ``APPROVED``, and the body gets as many parameters as it has placeholders.
    """
    if not isinstance(payload, dict) or not payload.get("name"):
        raise ServiceError(_("A template message needs the template's name."), code="invalid")
    language = (payload.get("language") or {}).get("code")
    if not language:
        raise ServiceError(_("A template message needs a language."), code="invalid")
    names = {"name": payload["name"], "language": language}
    template = MessageTemplate.objects.filter(
        account_id=account_id, name=payload["name"], language=language
    ).first()
    if template is None:
        raise ServiceError(
            _(
                "The template “%(name)s” (%(language)s) is not known for this WhatsApp number: "
                "sync the templates and choose one of them."
            )
            % names,
            code="template_not_found",
        )
    if not template.is_approved:
        raise ServiceError(
            _(
                "The template “%(name)s” (%(language)s) cannot be sent: on WhatsApp it is "
                "%(state)s, not approved."
            )
            % {**names, "state": _state_label(template.status)},
            code="template_not_approved",
        )
    if template.components:
        expected, given = len(template_placeholders(template)), _body_parameter_count(payload)
        if expected != given:
            raise ServiceError(
                _(
                    "The template “%(name)s” (%(language)s) needs %(expected)s body "
                    "parameter(s); %(given)s given."
                )
                % {**names, "expected": expected, "given": given},
                code="template_parameters",
            )
    return template


def template_message_content(
    *, template: MessageTemplate, parameters: list[str]
) -> tuple[str, dict[str, Any]]:
    """``(body, raw_payload)`` of a template message: the readable text and Meta's object."""
    names = template_placeholders(template)
    values = dict(zip(names, parameters, strict=False))
    text = PLACEHOLDER.sub(lambda m: values.get(m.group(1), "…"), template_body_text(template))
    payload: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if parameters:
        named = bool(names) and not all(name.isdigit() for name in names)
        payload["components"] = [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": value}
                    | ({"parameter_name": names[i]} if named and i < len(names) else {})
                    for i, value in enumerate(parameters)
                ],
            }
        ]
    return text or template.name, {"template": payload}


def template_message_for(
    *, account_id: int | None, name: str, language: str, parameters: list[str]
) -> tuple[str, dict[str, Any]]:
    """``(body, raw_payload)`` for a template named by a client (the API).

    An unknown name still yields Meta's object, so that :func:`template_check` (when the message
    is created) refuses it with the reason.
    """
    template = MessageTemplate.objects.filter(
        account_id=account_id, name=name, language=language
    ).first()
    if template is None:
        template = MessageTemplate(name=name, language=language)
    return template_message_content(template=template, parameters=parameters)


class TemplateSyncError(Exception):
    """The account cannot be synced (no WABA id or no token); the message says why."""


def templates_sync(*, account: WhatsAppAccount) -> tuple[int, int]:
    """Upsert every template Meta has for the account; those Meta no longer has are removed.

    Returns ``(synced, removed)``. Raises :class:`TemplateSyncError` or ``GraphError``.
    """
    if not account.waba_id:
        raise TemplateSyncError(f"{account}: set the WhatsApp Business account id first")
    token = account_token(account)
    if not token:
        raise TemplateSyncError(f"{account}: no access token (sandbox)")
    found = GraphClient(token=token).templates(waba_id=account.waba_id)
    now = timezone.now()
    seen: set[int] = set()
    with transaction.atomic():
        for item in found:
            name, language = str(item.get("name") or ""), str(item.get("language") or "")
            if not name or not language:
                continue
            template, _created = MessageTemplate.objects.update_or_create(
                account=account,
                name=name[:512],
                language=language[:16],
                defaults={
                    "meta_id": str(item.get("id") or "")[:64],
                    "status": str(item.get("status") or "")[:32],
                    "category": str(item.get("category") or "")[:32],
                    "components": item.get("components") or [],
                    "synced_at": now,
                },
            )
            seen.add(template.pk)
        removed, _detail = (
            MessageTemplate.objects.filter(account=account).exclude(pk__in=seen).delete()
        )
    return len(seen), removed
