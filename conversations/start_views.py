"""The console's "New conversation" form (``/new/``): the desk writes first, with a template.

Interfaces only: the form's fields become :func:`~conversations.services.proactive.
conversation_start`'s arguments; a refusal (an invalid number, a template that does not fit, a
colleague's conversation in progress) shows in the form with what was typed.
"""

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from django_htmx.http import push_url, trigger_client_event

from accounts.models import User
from common.api import id_param
from common.exceptions import ServiceError

from . import selectors
from .channels import channel_configured
from .forms import template_request_from_post
from .services import proactive
from .views import PAGE_TEMPLATE, _inbox, _inbox_query, _list_params, _pane

FORM_FIELDS = ("phone", "name", "department", "whatsapp_account", "template")


def _form(request: HttpRequest, values: Any, error: str = "") -> dict[str, Any]:
    user: User = request.user  # type: ignore[assignment]
    channel = channel_configured()
    numbers = channel.numbers_active()
    number_id = id_param(values.get("whatsapp_account"))
    if number_id not in {n.pk for n in numbers}:
        number_id = channel.number_default().pk
    return {
        "conversation": None,
        "new_conversation": True,
        "new_numbers": numbers if len(numbers) > 1 else [],
        "new_number": number_id,
        "new_departments": list(selectors.department_list_startable_by(user=user)),
        "templates": channel.templates_for_number(number_id=number_id),
        "chosen": id_param(values.get("template")),
        "values": {name: str(values.get(name, "")).strip() for name in FORM_FIELDS}
        | {"header_text": str(values.get("header_text", ""))},
        "error": error,
        "back_params": _list_params(request),
    }


def _show_form(request: HttpRequest, values: Any, error: str = "") -> HttpResponse:
    context = _form(request, values, error)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, f"{PAGE_TEMPLATE}#conversation_pane", context)
    query = _inbox_query(request)
    return render(request, PAGE_TEMPLATE, {"page": "inbox", **_inbox(request, query), **context})


@require_http_methods(["GET", "POST"])
@login_required
def conversation_new(request: HttpRequest) -> HttpResponse:
    """GET: the form (for a number, ``?whatsapp_account=``); POST: start the conversation and
    open it (its pane, with the address bar on ``/c/<id>/``)."""
    if request.method != "POST":
        return _show_form(request, request.GET)
    department_id = id_param(request.POST.get("department"))
    try:
        started = proactive.conversation_start(
            actor=request.user,  # type: ignore[arg-type]
            phone=request.POST.get("phone", "").strip()[:32],
            name=request.POST.get("name", "").strip()[:200],
            department=selectors.department_get(pk=department_id) if department_id else None,
            number_id=id_param(request.POST.get("whatsapp_account")),
            template=template_request_from_post(request.POST, request.FILES),
        )
    except ServiceError as exc:
        return _show_form(request, request.POST, exc.message)
    conversation = started.conversation
    if not request.htmx:  # type: ignore[attr-defined]
        return redirect("conversations:detail", pk=conversation.pk)
    response = render(request, f"{PAGE_TEMPLATE}#conversation_pane", _pane(request, conversation))
    push_url(response, reverse("conversations:detail", args=[conversation.pk]))
    return trigger_client_event(response, "inbox:refresh")
