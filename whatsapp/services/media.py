"""Inbound media: Graph API media id → short-lived URL → bytes, verified, kept in ``STORAGES``.

``GET {api}/{media_id}`` then ``GET <url>``, both with the bearer token. Only the Graph API host
and Meta's media hosts (``WHATSAPP_MEDIA_HOSTS``) are fetched; sizes are capped per type
(``WHATSAPP_MEDIA_MAX_BYTES``) and the sha256 is checked. A failed download is retried, then
shown on the message (``media_error``), never lost: the media id stays on the message.
"""

import logging
import mimetypes
import random
from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext as _

from conversations.models import Message
from conversations.services import delivery
from whatsapp.client import ErrorKind, GraphClient, GraphError, UnsafeURLError, sha256_matches
from whatsapp.models import ChannelError, ChannelErrorKind

from .accounts import account_token

logger = logging.getLogger(__name__)

DEFAULT_LIMITS = {
    "image": 5 * 1024 * 1024,
    "video": 16 * 1024 * 1024,
    "audio": 16 * 1024 * 1024,
    "document": 100 * 1024 * 1024,
    "sticker": 500 * 1024,
}


@dataclass
class MediaRetry(Exception):  # noqa: N818 - a signal to the task
    countdown: float


def max_bytes(kind: str) -> int:
    limits = {**DEFAULT_LIMITS, **getattr(settings, "WHATSAPP_MEDIA_MAX_BYTES", {})}
    return int(limits.get(kind, DEFAULT_LIMITS["document"]))


def _filename(message: Message, mime_type: str) -> str:
    if message.media_filename:
        name = message.media_filename.replace("/", "_").replace("\\", "_")[-120:]
    else:
        extension = mimetypes.guess_extension((mime_type or "").split(";")[0].strip()) or ""
        name = f"{message.type}{extension}"
    return f"whatsapp/{message.conversation_id}/{message.pk}-{name}"


def _give_up(message: Message, reason: str) -> None:
    delivery.message_media_failed(message=message, reason=reason)
    ChannelError.objects.create(
        kind=ChannelErrorKind.MEDIA,
        account=message.conversation.whatsapp_account,
        title=_("Media of message %(id)s could not be downloaded") % {"id": message.pk},
        details=reason,
    )


def media_download(*, message_id: int, final: bool = False) -> Message:
    """Download the media of an inbound message once; idempotent (skips when already stored).

    Raises :class:`MediaRetry` while retrying makes sense; on the ``final`` attempt (or for an
    error retrying cannot fix) the reason is stored in ``media_error``.
    """
    message = Message.objects.select_related("conversation__whatsapp_account").get(pk=message_id)
    if message.media_file or not message.media_id:
        return message
    token = account_token(message.conversation.whatsapp_account)
    if not token:
        _give_up(message, _("No access token: media cannot be fetched in the sandbox."))
        return message
    client = GraphClient(token=token)
    limit = max_bytes(message.type)
    try:
        info = client.media_info(media_id=message.media_id)
        declared = info.get("file_size")
        if isinstance(declared, int | str) and str(declared).isdigit() and int(declared) > limit:
            _give_up(message, _("The file is larger than the limit (%(n)s bytes).") % {"n": limit})
            return message
        url = str(info.get("url") or "")
        content = client.download(url=url, max_bytes=limit)
        expected = str(info.get("sha256") or message.media_sha256 or "")
        if not sha256_matches(content, expected):
            raise GraphError("the file does not match its sha256", kind=ErrorKind.RETRY)
    except UnsafeURLError as exc:
        logger.warning("media of message %s: refused URL: %s", message_id, exc)
        _give_up(message, _("Refused a media URL outside Meta's hosts."))
        return message
    except GraphError as exc:
        retryable = exc.kind == ErrorKind.RETRY or exc.http_status == 404 or exc.code is None
        if retryable and not final and "larger than" not in exc.message:
            raise MediaRetry(2 ** random.uniform(1, 4)) from exc  # noqa: S311 - jitter
        _give_up(message, str(exc))
        return message
    mime_type = str(info.get("mime_type") or message.media_mime_type)
    message = delivery.message_media_store(
        message_id=message_id,
        content=content,
        filename=_filename(message, mime_type),
        mime_type=mime_type,
    )
    return message
