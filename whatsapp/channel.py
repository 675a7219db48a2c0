"""WhatsApp as the desk core's channel (``settings.CONVERSATION_CHANNEL``; see
``conversations.channels``)."""

from typing import Any

from conversations.channels import ChannelCapabilities
from conversations.models import Conversation

from .services import outbound


class WhatsAppChannel:
    def outbound_validate(
        self, *, conversation: Conversation, type: str, body: str, media: dict[str, Any]
    ) -> None:
        outbound.outbound_validate(conversation=conversation, type=type, body=body, media=media)

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
