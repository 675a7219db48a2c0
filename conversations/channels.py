"""The channel port: what the desk core asks of the channel a conversation's messages go through.

The core never imports a channel. It finds the one named in ``settings.CONVERSATION_CHANNEL``
(the way Django finds ``EMAIL_BACKEND``) and asks it to validate an outbound message before the
row is written, and what it can do. Sending, marking as read and the rest happen in the channel's
own event handler, on the ``message.created`` and ``conversation.read`` events.
"""

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .models import Conversation

if TYPE_CHECKING:  # services import this module
    from .services.customers import CustomerIdentity


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
class TemplateButtonChoice:
    """A button of a template. ``parameter``: ``required`` (e.g. the end of a URL button's
    link), ``optional`` (a quick reply's payload) or ``""`` (the button takes none)."""

    index: int
    type: str  # url | quick_reply | copy_code | phone_number | ...
    text: str
    parameter: str
    url: str = ""


@dataclass(frozen=True)
class TemplateChoice:
    """An approved message template the composer may offer (``pk`` as the channel knows it).

    ``header``: ``""`` (none), ``text``, ``image``, ``video``, ``document`` or ``location``;
    ``header_parameters`` and ``body_parameters`` name the placeholders to fill, in order."""

    pk: int
    name: str
    language: str
    body_text: str
    parameter_count: int
    header: str = ""
    header_text: str = ""
    header_parameters: tuple[str, ...] = ()
    body_parameters: tuple[str, ...] = ()
    buttons: tuple[TemplateButtonChoice, ...] = ()

    @property
    def header_media(self) -> bool:
        return self.header in ("image", "video", "document")

    @property
    def button_parameters(self) -> tuple[TemplateButtonChoice, ...]:
        return tuple(b for b in self.buttons if b.parameter)


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

    def templates_for_number(self, *, number_id: int) -> list[TemplateChoice]:
        """The approved templates of one of the business's numbers (before any conversation)."""

    def numbers_active(self) -> list[ChannelNumber]:
        """The business's active numbers, by name (one query)."""

    def number_default(self) -> ChannelNumber:
        """The number a conversation the desk starts goes through when none is chosen."""

    def customer_identity(self, *, address: str, name: str = "") -> "CustomerIdentity | None":
        """Who ``address`` (a phone number as someone typed it) is on the channel: every form
        under which the channel knows that person, as its intake finds customers; None when it
        is not an address of the channel."""

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
        """``(body, raw_payload)`` of a template message, picked by ``pk`` (the console) or by
        ``name`` and ``language`` (the API); None when ``pk`` names no template of the number.
        ``parameters`` are the body's; ``header`` (``{"type": "text", "text"}``, or a media
        kind with ``link``/``id``/``filename``; a file attached to the message otherwise) and
        ``buttons`` (``[{"index", "value"}]``) the others'. Whether it may be sent is
        :meth:`outbound_validate`'s answer."""


@cache
def _channel(path: str) -> Channel:
    channel: Channel = import_string(path)()
    return channel


def conversation_channel(conversation: Conversation) -> Channel:
    """The channel of ``conversation`` (today every conversation is on the one configured)."""
    return _channel(settings.CONVERSATION_CHANNEL)


def channel_configured() -> Channel:
    """The configured channel, for what comes before any conversation (a proactive start)."""
    return _channel(settings.CONVERSATION_CHANNEL)


def channel_numbers_active() -> list[ChannelNumber]:
    """The active numbers of the configured channel (the console's "number" filter)."""
    return _channel(settings.CONVERSATION_CHANNEL).numbers_active()


@receiver(setting_changed)
def _forget_channel(*, setting: str, **kwargs: Any) -> None:
    if setting == "CONVERSATION_CHANNEL":
        _channel.cache_clear()
