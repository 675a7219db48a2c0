"""Template messages as the desk asks for them: which template, and the parameters of each of its
parts (header, body, buttons), with an optional file for a media header.

The console's picker, ``POST /messages`` and ``POST /conversations`` (a proactive start) all turn
their input into a :class:`TemplateRequest`; :func:`template_content` asks the channel for the
readable text and the channel's own object. Whether it may be sent (the template is approved,
every part gets the parameters the synced template takes, the file is of the header's kind) is
the channel's check when the message row is written.
"""

from dataclasses import dataclass, field
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext as _

from common.exceptions import ServiceError

from ..channels import conversation_channel
from ..models import Conversation
from ..uploads import upload_validate


@dataclass(frozen=True)
class TemplateRequest:
    """A template picked by ``pk`` (the console) or by ``name`` and ``language`` (the API).

    ``parameters``: the body's, in order. ``header``: ``{"type": "text", "text"}``, or a media
    header's ``{"type"?, "link"|"id", "filename"?}``, or a location's; ``file``: the media
    header's file instead of a link. ``buttons``: ``[{"index", "value"}]`` (a URL button's link
    ending, a quick reply's payload, a copy-code button's code)."""

    pk: int | None = None
    name: str = ""
    language: str = ""
    parameters: list[str] = field(default_factory=list)
    header: dict[str, Any] | None = None
    buttons: list[dict[str, Any]] = field(default_factory=list)
    file: UploadedFile | None = None


def template_content(
    *, conversation: Conversation, template: TemplateRequest
) -> tuple[str, dict[str, Any]]:
    """``(body, fields)`` of the template message: its readable text and the message's other
    fields (``raw_payload``, and the header's file with its type, name and size)."""
    header = dict(template.header) if template.header else None
    media: dict[str, Any] = {}
    if template.file is not None:
        upload = template.file
        kind = upload_validate(
            filename=upload.name, content_type=upload.content_type, size=upload.size
        )
        header = {**(header or {}), "type": kind.type}
        header.pop("link", None)
        header.pop("id", None)
        if kind.type == "document":
            header.setdefault("filename", kind.filename)
        media = {
            "media_file": upload,
            "media_mime_type": kind.mime_type,
            "media_filename": kind.filename,
            "media_size": upload.size,
        }
    content = conversation_channel(conversation).template_message(
        conversation=conversation,
        pk=template.pk,
        name=template.name,
        language=template.language,
        parameters=list(template.parameters),
        header=header,
        buttons=list(template.buttons),
    )
    if content is None:
        raise ServiceError(_("Choose an approved template."), code="template_not_found")
    body, raw_payload = content
    return body, {"raw_payload": raw_payload, **media}
