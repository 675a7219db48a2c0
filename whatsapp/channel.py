"""WhatsApp as the desk core's channel (``settings.CONVERSATION_CHANNEL``; see
``conversations.channels``)."""

from typing import Any

from conversations.channels import (
    ChannelCapabilities,
    ChannelNumber,
    TemplateButtonChoice,
    TemplateChoice,
)
from conversations.models import Conversation
from conversations.services.customers import CustomerIdentity

from .identity import typed_number_is_plausible
from .models import MessageTemplate, WhatsAppAccount
from .services import accounts, inbound, outbound, templates


def _choice(template: MessageTemplate) -> TemplateChoice:
    spec = templates.template_spec(template)
    return TemplateChoice(
        pk=template.pk,
        name=template.name,
        language=template.language,
        body_text=spec.body_text,
        parameter_count=len(spec.body_parameters),
        header=spec.header,
        header_text=spec.header_text,
        header_parameters=tuple(spec.header_parameters),
        body_parameters=tuple(spec.body_parameters),
        buttons=tuple(
            TemplateButtonChoice(
                index=b.index, type=b.type, text=b.text, parameter=b.parameter, url=b.url
            )
            for b in spec.buttons
        ),
    )


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

    def number_default(self) -> ChannelNumber:
        account = accounts.account_get_default()
        return ChannelNumber(
            pk=account.pk, name=account.name, display_phone_number=account.display_phone_number
        )

    def customer_identity(self, *, address: str, name: str = "") -> CustomerIdentity | None:
        """Both Brazilian forms of a mobile number (with and without the ninth digit), the way
        inbound processing finds the customer who writes."""
        if not typed_number_is_plausible(address):
            return None
        return inbound.customer_identity(wa_id=address, name=name)

    def templates_approved(self, *, conversation: Conversation) -> list[TemplateChoice]:
        return self.templates_for_number(number_id=conversation.whatsapp_account_id)

    def templates_for_number(self, *, number_id: int) -> list[TemplateChoice]:
        found = MessageTemplate.objects.filter(account_id=number_id, status__iexact="APPROVED")
        return [_choice(t) for t in found]

    def template_message(
        self,
        *,
        conversation: Conversation,
        parameters: list[str],
        pk: int | None = None,
        name: str = "",
        language: str = "",
        header: dict[str, Any] | None = None,
        buttons: list[dict[str, Any]] | None = None,
    ) -> tuple[str, dict[str, Any]] | None:
        if pk is None:
            return templates.template_message_for(
                account_id=conversation.whatsapp_account_id,
                name=name,
                language=language,
                parameters=parameters,
                header=header,
                buttons=buttons,
            )
        # Any synced template of the number: the sender's check names a state that is not
        # approved (e.g. paused since the picker was drawn) and a wrong number of parameters.
        template = MessageTemplate.objects.filter(
            pk=pk, account_id=conversation.whatsapp_account_id
        ).first()
        if template is None:
            return None
        return templates.template_message_content(
            template=template, parameters=parameters, header=header, buttons=buttons
        )
