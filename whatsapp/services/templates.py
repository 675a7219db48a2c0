"""Message templates, synced from the Graph API (``GET /{waba_id}/message_templates``).

Only a synced template that Meta has ``APPROVED`` for the conversation's number is sent
(:func:`template_check`, called by ``outbound.outbound_validate``): anything else would come back
from Meta as a 132xxx error after the agent thought it was sent.

Every kind of parameter Meta takes is built and checked against the synced components
(:func:`template_spec`): the header's (a text parameter, or an image, video or document — by link,
by media id, or a file uploaded when the message goes — or a location), the body's, and the
buttons' (the end of a URL button's link, a quick reply's payload, a copy-code button's code).
"""

import copy
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from common.exceptions import ServiceError
from whatsapp.client import GraphClient
from whatsapp.models import MessageTemplate, WhatsAppAccount

from .accounts import account_token

# ``{{1}}`` (positional) or ``{{first_name}}`` (named parameters).
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
# A synced header's ``format`` → the parameter type Meta expects for it.
MEDIA_HEADERS = {"IMAGE": "image", "VIDEO": "video", "DOCUMENT": "document"}
HEADER_FORMATS = {"TEXT": "text", "LOCATION": "location", **MEDIA_HEADERS}
# A button's parameter: its type in Meta's object, and whether the button needs one.
BUTTON_PARAMETERS = {"url": "text", "quick_reply": "payload", "copy_code": "coupon_code"}
MAX_PARAMETER_LENGTH = 1024


@dataclass(frozen=True)
class ButtonSpec:
    """One button of a synced template. ``parameter``: ``required`` (a URL button whose link ends
    in a placeholder, a copy-code button), ``optional`` (a quick reply's payload) or ``""``."""

    index: int
    type: str  # url | quick_reply | copy_code | phone_number | flow | ... (lower case)
    text: str
    url: str
    parameter: str


@dataclass(frozen=True)
class TemplateSpec:
    """What a synced template takes: its header (``header`` ``""``, ``text``, ``image``,
    ``video``, ``document`` or ``location``), body and buttons, with their parameters' names."""

    header: str
    header_text: str
    header_parameters: list[str]
    body_text: str
    body_parameters: list[str]
    buttons: list[ButtonSpec]

    def button(self, index: int) -> ButtonSpec | None:
        return next((b for b in self.buttons if b.index == index), None)


def _component(template: MessageTemplate, kind: str) -> dict[str, Any]:
    for component in template.components or []:
        if isinstance(component, dict) and str(component.get("type", "")).upper() == kind:
            return component
    return {}


def _names(text: str) -> list[str]:
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))


def _button_spec(index: int, button: dict[str, Any]) -> ButtonSpec:
    kind = str(button.get("type", "")).lower()
    url = str(button.get("url", ""))
    if kind == "url":
        parameter = "required" if PLACEHOLDER.search(url) else ""
    elif kind == "quick_reply":
        parameter = "optional"
    elif kind == "copy_code":
        parameter = "required"
    else:
        parameter = ""
    return ButtonSpec(index, kind, str(button.get("text", "")), url, parameter)


def template_spec(template: MessageTemplate) -> TemplateSpec:
    """The parameters a synced template takes, read from its components."""
    header = _component(template, "HEADER")
    header_format = (
        HEADER_FORMATS.get(str(header.get("format", "TEXT")).upper(), "") if header else ""
    )
    header_text = str(header.get("text", "")) if header_format == "text" else ""
    body_text = str(_component(template, "BODY").get("text", ""))
    buttons = _component(template, "BUTTONS").get("buttons") or []
    return TemplateSpec(
        header=header_format,
        header_text=header_text,
        header_parameters=_names(header_text),
        body_text=body_text,
        body_parameters=_names(body_text),
        buttons=[
            _button_spec(i, b)
            for i, b in enumerate(buttons if isinstance(buttons, list) else [])
            if isinstance(b, dict)
        ],
    )


def template_body_text(template: MessageTemplate) -> str:
    """The text of the template's BODY component ("" when Meta sent none)."""
    return template_spec(template).body_text


def template_placeholders(template: MessageTemplate) -> list[str]:
    """The body's parameters, each once, in order of appearance."""
    return template_spec(template).body_parameters


def _state_label(status: str) -> str:
    labels = {
        "PENDING": _("pending review"),
        "REJECTED": _("rejected"),
        "PAUSED": _("paused"),
        "DISABLED": _("disabled"),
        "IN_APPEAL": _("in appeal"),
        "PENDING_DELETION": _("pending deletion"),
        "DELETED": _("deleted"),
    }
    return labels.get(status.upper(), status or _("unknown"))


# --- What a payload gives ---------------------------------------------------------------------


@dataclass
class _Given:
    """The parameters of Meta's ``template`` object, by component."""

    header: list[Any] | None
    body: list[Any]
    buttons: list[dict[str, Any]]
    unknown: list[str]


def _given(payload: dict[str, Any]) -> _Given:
    given = _Given(header=None, body=[], buttons=[], unknown=[])
    for component in payload.get("components") or []:
        if not isinstance(component, dict):
            given.unknown.append(str(component))
            continue
        kind = str(component.get("type", "")).lower()
        parameters = component.get("parameters") or []
        parameters = parameters if isinstance(parameters, list) else [parameters]
        if kind == "header":
            given.header = [*(given.header or []), *parameters]
        elif kind == "body":
            given.body += parameters
        elif kind == "button":
            given.buttons.append(component)
        else:
            given.unknown.append(kind)
    return given


def _refuse(message: str, code: str) -> None:
    raise ServiceError(message, code=code)


def _check_text_values(parameters: list[Any], names: dict[str, str]) -> None:
    for parameter in parameters:
        if not isinstance(parameter, dict):
            _refuse(_("A template parameter must be an object."), "template_parameters")
        kind = parameter.get("type")
        value = parameter.get(kind) if isinstance(kind, str) else None
        if kind == "text" and not str(value or "").strip():
            _refuse(
                _("The template “%(name)s” (%(language)s) got an empty parameter: fill them all.")
                % names,
                "template_parameters",
            )


def _safe_link(link: Any) -> bool:
    if not isinstance(link, str):
        return False
    parts = urlsplit(link.strip())
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _check_media_header(
    spec: TemplateSpec, parameter: Any, names: dict[str, str], *, has_file: bool
) -> None:
    kind = spec.header
    labels = {"image": _("an image"), "video": _("a video"), "document": _("a document")}
    given_kind = parameter.get("type") if isinstance(parameter, dict) else None
    if given_kind is None and not has_file:
        _refuse(
            _(
                "The template “%(name)s” (%(language)s) needs %(kind)s in its header: give its "
                "link or upload the file."
            )
            % {**names, "kind": labels[kind]},
            "template_header_media",
        )
    if given_kind != kind:
        _refuse(
            _(
                "The template “%(name)s” (%(language)s) has %(kind)s in its header; "
                "%(given)s was given."
            )
            % {
                **names,
                "kind": labels[kind],
                "given": labels.get(str(given_kind), str(given_kind)),
            },
            "template_header_media",
        )
    media = parameter.get(kind) if isinstance(parameter.get(kind), dict) else {}
    if media.get("link") is not None and not _safe_link(media.get("link")):
        _refuse(
            _("The header's link must be a web address (http or https)."), "template_header_media"
        )
    if not (media.get("id") or media.get("link") or has_file):
        _refuse(
            _(
                "The template “%(name)s” (%(language)s) needs %(kind)s in its header: give its "
                "link or upload the file."
            )
            % {**names, "kind": labels[kind]},
            "template_header_media",
        )


def _check_header(
    spec: TemplateSpec, given: list[Any] | None, names: dict[str, str], *, has_file: bool
) -> None:
    parameters = given or []
    if spec.header in MEDIA_HEADERS.values():
        if len(parameters) > 1:
            _refuse(_("A template's header takes one file."), "template_header_media")
        _check_media_header(spec, parameters[0] if parameters else {}, names, has_file=has_file)
        return
    if spec.header == "location":
        location = (
            parameters[0].get("location")
            if parameters and isinstance(parameters[0], dict)
            else None
        )
        if (
            len(parameters) != 1
            or not isinstance(location, dict)
            or not all(
                isinstance(location.get(k), int | float | str) and str(location.get(k)).strip()
                for k in ("latitude", "longitude")
            )
        ):
            _refuse(
                _(
                    "The template “%(name)s” (%(language)s) needs a location in its header "
                    "(latitude and longitude)."
                )
                % names,
                "template_parameters",
            )
        return
    expected = len(spec.header_parameters)
    if expected != len(parameters):
        _refuse(
            _(
                "The template “%(name)s” (%(language)s) needs %(expected)s header "
                "parameter(s); %(given)s given."
            )
            % {**names, "expected": expected, "given": len(parameters)},
            "template_parameters",
        )
    for parameter in parameters:
        if not isinstance(parameter, dict) or parameter.get("type") != "text":
            _refuse(
                _("The template “%(name)s” (%(language)s) takes text in its header.") % names,
                "template_parameters",
            )
    _check_text_values(parameters, names)


def _button_what(button: ButtonSpec) -> str:
    if button.type == "url":
        return _("the end of its link")
    if button.type == "copy_code":
        return _("the code to copy")
    return _("a payload")


def _check_buttons(spec: TemplateSpec, given: list[dict[str, Any]], names: dict[str, str]) -> None:
    seen: set[int] = set()
    for component in given:
        raw_index = component.get("index")
        index = int(str(raw_index)) if str(raw_index).isdigit() else -1
        button = spec.button(index)
        if button is None:
            _refuse(
                _("The template “%(name)s” (%(language)s) has no button %(index)s.")
                % {**names, "index": raw_index},
                "template_button",
            )
            return
        labels = {**names, "index": index, "text": button.text}
        if index in seen:
            _refuse(_("Button %(index)s (“%(text)s”) is given twice.") % labels, "template_button")
        seen.add(index)
        sub_type = str(component.get("sub_type", "")).lower()
        if sub_type != button.type:
            _refuse(
                _("Button %(index)s (“%(text)s”) is a %(kind)s button, not %(given)s.")
                % {**labels, "kind": button.type, "given": sub_type or "—"},
                "template_button",
            )
        if not button.parameter:
            _refuse(
                _("Button %(index)s (“%(text)s”) takes no parameter.") % labels, "template_button"
            )
        parameters = component.get("parameters") or []
        expected_type = BUTTON_PARAMETERS[button.type]
        if (
            not isinstance(parameters, list)
            or len(parameters) != 1
            or not isinstance(parameters[0], dict)
            or parameters[0].get("type") != expected_type
            or not str(parameters[0].get(expected_type) or "").strip()
        ):
            _refuse(
                _("Button %(index)s (“%(text)s”) takes one parameter: %(what)s.")
                % {**labels, "what": _button_what(button)},
                "template_button",
            )
    for button in spec.buttons:
        if button.parameter == "required" and button.index not in seen:
            _refuse(
                _("Button %(index)s (“%(text)s”) of “%(name)s” needs %(what)s.")
                % {
                    **names,
                    "index": button.index,
                    "text": button.text,
                    "what": _button_what(button),
                },
                "template_button",
            )


def _check_components(
    template: MessageTemplate, payload: dict[str, Any], names: dict[str, str], *, has_file: bool
) -> None:
    spec = template_spec(template)
    given = _given(payload)
    if has_file and spec.header not in MEDIA_HEADERS.values():
        _refuse(
            _(
                "The template “%(name)s” (%(language)s) has no image, video or document header: "
                "send it without a file."
            )
            % names,
            "template_header_media",
        )
    if given.unknown:
        _refuse(
            _("A template message has header, body and button components; not %(kind)s.")
            % {"kind": ", ".join(given.unknown)},
            "template_parameters",
        )
    if given.header is not None and not spec.header:
        _refuse(
            _("The template “%(name)s” (%(language)s) has no header: send no header parameter.")
            % names,
            "template_parameters",
        )
    if spec.header:
        _check_header(spec, given.header, names, has_file=has_file)
    expected, count = len(spec.body_parameters), len(given.body)
    if expected != count:
        _refuse(
            _(
                "The template “%(name)s” (%(language)s) needs %(expected)s body "
                "parameter(s); %(given)s given."
            )
            % {**names, "expected": expected, "given": count},
            "template_parameters",
        )
    _check_text_values(given.body, names)
    _check_buttons(spec, given.buttons, names)


def template_check(
    *, account_id: int | None, payload: Any, has_file: bool = False
) -> MessageTemplate:
    """The synced, approved template Meta's ``template`` object names, or a clear ServiceError.

    Checks, for the conversation's WhatsApp number: the name and language are synced, Meta's
    status is ``APPROVED``, and every component gets the parameters the synced one takes — the
    header (text; or an image, video or document of the header's kind, by link or id, or
    ``has_file``: a file attached to the message, uploaded when it goes; or a location), the body
    (as many as it has placeholders, none empty) and the buttons (the URL ones whose link ends in
    a placeholder and the copy-code ones need theirs; a quick reply may carry a payload).
    """
    if not isinstance(payload, dict) or not payload.get("name"):
        raise ServiceError(_("A template message needs the template's name."), code="invalid")
    language = (payload.get("language") or {}).get("code")
    if not language:
        raise ServiceError(_("A template message needs a language."), code="invalid")
    names = {"name": payload["name"], "language": language}
    template = MessageTemplate.objects.filter(
        account_id=account_id, name=payload["name"], language=language
    ).first()
    if template is None:
        raise ServiceError(
            _(
                "The template “%(name)s” (%(language)s) is not known for this WhatsApp number: "
                "sync the templates and choose one of them."
            )
            % names,
            code="template_not_found",
        )
    if not template.is_approved:
        raise ServiceError(
            _(
                "The template “%(name)s” (%(language)s) cannot be sent: on WhatsApp it is "
                "%(state)s, not approved."
            )
            % {**names, "state": _state_label(template.status)},
            code="template_not_approved",
        )
    if template.components:
        _check_components(template, payload, names, has_file=has_file)
    return template


# --- Building Meta's object -------------------------------------------------------------------


def _text_parameter(value: str, names: list[str], i: int) -> dict[str, Any]:
    named = bool(names) and not all(name.isdigit() for name in names)
    return {"type": "text", "text": value} | (
        {"parameter_name": names[i]} if named and i < len(names) else {}
    )


def _header_component(header: dict[str, Any], spec: TemplateSpec) -> dict[str, Any]:
    kind = str(header.get("type") or spec.header or "text").lower()
    parameter: dict[str, Any]
    if kind == "text":
        parameter = _text_parameter(str(header.get("text", "")), spec.header_parameters, 0)
    elif kind in MEDIA_HEADERS.values():
        media: dict[str, Any] = {}
        if header.get("id"):
            media["id"] = str(header["id"])
        elif header.get("link"):
            media["link"] = str(header["link"]).strip()
        if kind == "document" and header.get("filename"):
            media["filename"] = str(header["filename"])[:240]
        parameter = {"type": kind, kind: media}
    elif kind == "location":
        parameter = {
            "type": "location",
            "location": {
                key: header[key]
                for key in ("latitude", "longitude", "name", "address")
                if header.get(key) not in (None, "")
            },
        }
    else:
        parameter = {"type": kind}
    return {"type": "header", "parameters": [parameter]}


def _button_value(item: dict[str, Any]) -> str:
    for key in ("value", "text", "payload", "coupon_code"):
        if item.get(key) not in (None, ""):
            return str(item[key])
    return ""


def _button_component(item: dict[str, Any], spec: TemplateSpec) -> dict[str, Any]:
    raw_index = item.get("index")
    index = int(str(raw_index)) if str(raw_index).isdigit() else None
    synced = spec.button(index) if index is not None else None
    sub_type = str(item.get("type") or (synced.type if synced else "url")).lower()
    parameter_type = BUTTON_PARAMETERS.get(sub_type, "text")
    return {
        "type": "button",
        "sub_type": sub_type,
        "index": str(raw_index),
        "parameters": [{"type": parameter_type, parameter_type: _button_value(item)}],
    }


def _fill(text: str, names: list[str], values: list[str]) -> str:
    found = dict(zip(names, values, strict=False))
    return PLACEHOLDER.sub(lambda m: found.get(m.group(1), "…"), text)


def template_message_content(
    *,
    template: MessageTemplate,
    parameters: list[str],
    header: dict[str, Any] | None = None,
    buttons: list[dict[str, Any]] | None = None,
) -> tuple[str, dict[str, Any]]:
    """``(body, raw_payload)`` of a template message: the readable text and Meta's object.

    ``parameters``: the body's, in order. ``header``: ``{"type": "text", "text"}``; ``{"type":
    "image"|"video"|"document", "link" or "id", "filename"?}`` (neither link nor id: the file
    attached to the message, uploaded when it goes); ``{"type": "location", "latitude",
    "longitude", "name"?, "address"?}``. ``buttons``: ``[{"index", "type"?, "text"|"payload"|
    "coupon_code"|"value"}]`` (those without a value are left out). The ``type`` of each
    defaults to the synced template's; :func:`template_check` says what does not fit.
    """
    spec = template_spec(template)
    components: list[dict[str, Any]] = []
    if header:
        components.append(_header_component(header, spec))
    if parameters:
        components.append(
            {
                "type": "body",
                "parameters": [
                    _text_parameter(value, spec.body_parameters, i)
                    for i, value in enumerate(parameters)
                ],
            }
        )
    components += [_button_component(b, spec) for b in buttons or [] if _button_value(b)]
    payload: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if components:
        payload["components"] = components
    body = _fill(spec.body_text, spec.body_parameters, parameters)
    title = ""
    if spec.header_text:
        given = (
            [str(header.get("text", ""))] if header and header.get("type", "text") == "text" else []
        )
        title = _fill(spec.header_text, spec.header_parameters, given)
    text = "\n".join(part for part in (f"*{title}*" if title else "", body) if part)
    return text or template.name, {"template": payload}


def template_with_media_id(template: dict[str, Any], media_id: str) -> dict[str, Any]:
    """Meta's ``template`` object with the uploaded file's ``media_id`` in its media header
    (the one that names neither a link nor an id: the message's own file)."""
    filled = copy.deepcopy(template)
    for component in filled.get("components") or []:
        if str(component.get("type", "")).lower() != "header":
            continue
        for parameter in component.get("parameters") or []:
            kind = parameter.get("type")
            media = parameter.get(kind)
            if (
                kind in MEDIA_HEADERS.values()
                and isinstance(media, dict)
                and not (media.get("id") or media.get("link"))
            ):
                media["id"] = media_id
    return filled


def template_message_for(
    *,
    account_id: int | None,
    name: str,
    language: str,
    parameters: list[str],
    header: dict[str, Any] | None = None,
    buttons: list[dict[str, Any]] | None = None,
) -> tuple[str, dict[str, Any]]:
    """``(body, raw_payload)`` for a template named by a client (the API).

    An unknown name still yields Meta's object, so that :func:`template_check` (when the message
    is created) refuses it with the reason.
    """
    template = MessageTemplate.objects.filter(
        account_id=account_id, name=name, language=language
    ).first()
    if template is None:
        template = MessageTemplate(name=name, language=language)
    return template_message_content(
        template=template, parameters=parameters, header=header, buttons=buttons
    )


class TemplateSyncError(Exception):
    """The account cannot be synced (no WABA id or no token); the message says why."""


def templates_sync(*, account: WhatsAppAccount) -> tuple[int, int]:
    """Upsert every template Meta has for the account; those Meta no longer has are removed.

    Returns ``(synced, removed)``. Raises :class:`TemplateSyncError` or ``GraphError``.
    """
    if not account.waba_id:
        raise TemplateSyncError(f"{account}: set the WhatsApp Business account id first")
    token = account_token(account)
    if not token:
        raise TemplateSyncError(f"{account}: no access token (sandbox)")
    found = GraphClient(token=token).templates(waba_id=account.waba_id)
    now = timezone.now()
    seen: set[int] = set()
    with transaction.atomic():
        for item in found:
            name, language = str(item.get("name") or ""), str(item.get("language") or "")
            if not name or not language:
                continue
            template, _created = MessageTemplate.objects.update_or_create(
                account=account,
                name=name[:512],
                language=language[:16],
                defaults={
                    "meta_id": str(item.get("id") or "")[:64],
                    "status": str(item.get("status") or "")[:32],
                    "category": str(item.get("category") or "")[:32],
                    "components": item.get("components") or [],
                    "synced_at": now,
                },
            )
            seen.add(template.pk)
        removed, _detail = (
            MessageTemplate.objects.filter(account=account).exclude(pk__in=seen).delete()
        )
    return len(seen), removed
