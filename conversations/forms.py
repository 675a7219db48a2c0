"""What the console's forms post, read into what the services take."""

from django.http import QueryDict
from django.utils.datastructures import MultiValueDict

from common.api import id_param

from .services.templates import TemplateRequest


def template_request_from_post(post: QueryDict, files: MultiValueDict) -> TemplateRequest:  # type: ignore[type-arg]
    """The template picker's fields (``components/template_fields.html``): the template's pk;
    ``header_text``, or ``header_link`` / ``header_file`` (and ``header_filename``) for a media
    header; one ``body`` per body parameter, in order (the former ``parameters`` box, one per
    line, still works); ``button_<index>`` per button that takes one (left out when empty)."""

    def text(name: str) -> str:
        return str(post.get(name, "")).strip()

    body = [str(value).strip() for value in post.getlist("body")]
    if not body and text("parameters"):
        body = [line.strip() for line in text("parameters").splitlines() if line.strip()]
    header: dict[str, str] | None = None
    if "header_text" in post:
        header = {"type": "text", "text": text("header_text")}
    elif text("header_link"):
        header = {"link": text("header_link")}
    filename = text("header_filename")
    if header is not None and "link" in header and filename:
        header["filename"] = filename
    upload = files.get("header_file")
    if upload is not None and filename:
        upload.name = filename
    buttons: list[dict[str, object]] = [
        {"index": index, "value": text(key)}
        for key in post
        if key.startswith("button_")
        and (index := id_param(key.removeprefix("button_"))) is not None
        and text(key)
    ]
    return TemplateRequest(
        pk=id_param(post.get("template")) or 0,
        parameters=body,
        header=header,
        buttons=sorted(buttons, key=lambda b: int(str(b["index"]))),
        file=upload,
    )
