"""The channel port: what the desk core asks of the channel a conversation's messages go through.

The core never imports a channel. It finds the one named in ``settings.CONVERSATION_CHANNEL``
(the way Django finds ``EMAIL_BACKEND``) and asks it to validate an outbound message before the
row is written, and what it can do. Sending, marking as read and the rest happen in the channel's
own event handler, on the ``message.created`` and ``conversation.read`` events.
"""

from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .models import Conversation


@dataclass(frozen=True)
class ChannelCapabilities:
    """What the channel can do for one conversation now (the composer offers only these)."""

    free_form: bool  # text and media accepted now (WhatsApp: inside the 24-hour window)
    templates: bool
    interactive: bool
    reactions: bool
    read_receipts: bool
    max_text_length: int
    max_caption_length: int


@dataclass(frozen=True)
class TemplateChoice:
    """An approved message template the composer may offer (``pk`` as the channel knows it)."""

    pk: int
    name: str
    language: str
    body_text: str
    parameter_count: int


@dataclass(frozen=True)
class ChannelNumber:
    """One of the business's numbers (or addresses) on the channel, as the console shows it."""

    pk: int
    name: str
    display_phone_number: str


class Channel(Protocol):
    def outbound_validate(
        self,
        *,
        conversation: Conversation,
        type: str,
        body: str,
        media: dict[str, Any],
        window: bool = True,
    ) -> None:
        """Raise :class:`~common.exceptions.ServiceError` for what the channel would refuse.

        ``window`` False leaves out the checks of time (WhatsApp's 24-hour window): a scheduled
        message is checked for them again when it goes."""

    def capabilities(self, *, conversation: Conversation) -> ChannelCapabilities: ...

    def templates_approved(self, *, conversation: Conversation) -> list[TemplateChoice]: ...

    def numbers_active(self) -> list[ChannelNumber]:
        """The business's active numbers, by name (one query)."""

    def template_message(
        self,
        *,
        conversation: Conversation,
        parameters: list[str],
        pk: int | None = None,
        name: str = "",
        language: str = "",
    ) -> tuple[str, dict[str, Any]] | None:
        """``(body, raw_payload)`` of a template message, picked by ``pk`` (the console) or by
        ``name`` and ``language`` (the API); None when ``pk`` names no template of the number.
        Whether it may be sent is :meth:`outbound_validate`'s answer."""


@cache
def _channel(path: str) -> Channel:
    channel: Channel = import_string(path)()
    return channel


def conversation_channel(conversation: Conversation) -> Channel:
    """The channel of ``conversation`` (today every conversation is on the one configured)."""
    return _channel(settings.CONVERSATION_CHANNEL)


def channel_numbers_active() -> list[ChannelNumber]:
    """The active numbers of the configured channel (the console's "number" filter)."""
    return _channel(settings.CONVERSATION_CHANNEL).numbers_active()


@receiver(setting_changed)
def _forget_channel(*, setting: str, **kwargs: Any) -> None:
    if setting == "CONVERSATION_CHANNEL":
        _channel.cache_clear()
