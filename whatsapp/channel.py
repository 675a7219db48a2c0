"""WhatsApp as the desk core's channel (``settings.CONVERSATION_CHANNEL``; see
``conversations.channels``)."""

from typing import Any

from conversations.channels import ChannelCapabilities, ChannelNumber, TemplateChoice
from conversations.models import Conversation

from .models import MessageTemplate, WhatsAppAccount
from .services import outbound, templates


class WhatsAppChannel:
    def outbound_validate(
        self,
        *,
        conversation: Conversation,
        type: str,
        body: str,
        media: dict[str, Any],
        window: bool = True,
    ) -> None:
        outbound.outbound_validate(
            conversation=conversation, type=type, body=body, media=media, window=window
        )

    def capabilities(self, *, conversation: Conversation) -> ChannelCapabilities:
        return ChannelCapabilities(
            free_form=outbound.window_is_open(conversation),
            templates=True,
            interactive=True,
            reactions=True,
            read_receipts=True,
            max_text_length=outbound.MAX_TEXT_LENGTH,
            max_caption_length=outbound.MAX_CAPTION_LENGTH,
        )

    def numbers_active(self) -> list[ChannelNumber]:
        return [
            ChannelNumber(pk=pk, name=name, display_phone_number=display)
            for pk, name, display in WhatsAppAccount.objects.filter(is_active=True)
            .order_by("name", "pk")
            .values_list("pk", "name", "display_phone_number")
        ]

    def templates_approved(self, *, conversation: Conversation) -> list[TemplateChoice]:
        found = MessageTemplate.objects.filter(
            account_id=conversation.whatsapp_account_id, status__iexact="APPROVED"
        )
        return [
            TemplateChoice(
                pk=t.pk,
                name=t.name,
                language=t.language,
                body_text=templates.template_body_text(t),
                parameter_count=len(templates.template_placeholders(t)),
            )
            for t in found
        ]

    def template_message(
        self,
        *,
        conversation: Conversation,
        parameters: list[str],
        pk: int | None = None,
        name: str = "",
        language: str = "",
    ) -> tuple[str, dict[str, Any]] | None:
        if pk is None:
            return templates.template_message_for(
                account_id=conversation.whatsapp_account_id,
                name=name,
                language=language,
                parameters=parameters,
            )
        # Any synced template of the number: the sender's check names a state that is not
        # approved (e.g. paused since the picker was drawn) and a wrong number of parameters.
        template = MessageTemplate.objects.filter(
            pk=pk, account_id=conversation.whatsapp_account_id
        ).first()
        if template is None:
            return None
        return templates.template_message_content(template=template, parameters=parameters)
