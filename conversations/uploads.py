"""One rule for what a file an agent attaches is sent as, used by the console and the API."""

import mimetypes
from dataclasses import dataclass

from .models import MessageType

# Images WhatsApp shows as images; anything else image/* (SVG, GIF, HEIC…) goes as a document.
SENDABLE_IMAGES = frozenset({"image/jpeg", "image/png", "image/webp"})


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
