"""One rule for what a file an agent attaches is sent as, used by the console and the API.

:func:`upload_classify` says what a file is sent as; :func:`upload_validate` refuses, before
anything is stored or sent, a file WhatsApp would not take: Meta's media types and sizes
(https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types).
The console's script checks the same table before uploading.
"""

import mimetypes
from dataclasses import dataclass

from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from common.exceptions import ServiceError

from .models import MessageType

# Images WhatsApp shows as images; anything else image/* (SVG, GIF, HEIC…) goes as a document.
SENDABLE_IMAGES = frozenset({"image/jpeg", "image/png", "image/webp"})

MB = 1024 * 1024
# What may be sent, by MIME type, and up to how many bytes.
SENDABLE_MEDIA: dict[str, int] = {
    "image/jpeg": 5 * MB,
    "image/png": 5 * MB,
    **dict.fromkeys(
        ["audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"],
        16 * MB,
    ),
    "video/mp4": 16 * MB,
    "video/3gpp": 16 * MB,
    **dict.fromkeys(
        [
            "application/pdf",
            "application/msword",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.ms-excel",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.ms-powerpoint",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "text/plain",
        ],
        100 * MB,
    ),
}
# Browsers and systems that name these types otherwise.
_ALIASES = {
    "audio/mp3": "audio/mpeg",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "audio/opus": "audio/ogg",
    "audio/x-aac": "audio/aac",
    "video/3gp": "video/3gpp",
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
}


@dataclass(frozen=True)
class UploadKind:
    type: str  # a MessageType: image, audio, video or document
    mime_type: str
    filename: str


def upload_classify(*, filename: str | None, content_type: str | None) -> UploadKind:
    """The message type, MIME type and file name a file is sent with."""
    name = (filename or "file").rsplit("/", 1)[-1][:255] or "file"
    mime = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    mime = mime.split(";", 1)[0].strip().lower()[:100]
    mime = _ALIASES.get(mime, mime)
    major = mime.split("/", 1)[0]
    if mime in SENDABLE_IMAGES:
        kind = MessageType.IMAGE
    elif major == "audio":
        kind = MessageType.AUDIO
    elif major == "video":
        kind = MessageType.VIDEO
    else:
        kind = MessageType.DOCUMENT
    return UploadKind(type=kind, mime_type=mime, filename=name)


def upload_validate(
    *, filename: str | None, content_type: str | None, size: int | None
) -> UploadKind:
    """:func:`upload_classify`, or a ``ServiceError`` saying why WhatsApp would refuse the file.

    The type is the file's extension's when it has a known one (a browser's ``content_type`` is
    whatever the client says), else the declared type; an ``.exe`` is never a document.
    """
    kind = upload_classify(filename=filename, content_type=content_type)
    guessed = mimetypes.guess_type(kind.filename)[0]
    mime = _ALIASES.get(guessed, guessed) if guessed else kind.mime_type
    limit = SENDABLE_MEDIA.get(mime)
    if limit is None:
        raise ServiceError(
            _(
                "WhatsApp does not accept this kind of file (%(name)s). Send a JPEG or PNG image, "
                "an AAC, AMR, MP3, M4A or OGG audio, an MP4 or 3GP video, or a PDF, Word, Excel, "
                "PowerPoint or text document."
            )
            % {"name": kind.filename}
        )
    if size is not None and size > limit:
        raise ServiceError(
            _("This file is too big: WhatsApp accepts up to %(limit)s for this kind of file.")
            % {"limit": filesizeformat(limit)}
        )
    if mime != kind.mime_type:
        kind = upload_classify(filename=kind.filename, content_type=mime)
    return kind
