"""The console's contacts (a searchable list, a page per contact) and an agent's own quick replies.

Interfaces only, like :mod:`conversations.views`: a contact out of the user's reach is a 404
(``selectors.customer_get_visible``), every change goes through a service, whose refusal is shown
in the fragment. Full pages for plain requests, the partial named like its DOM id for htmx ones.
"""

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import push_url

from accounts.models import User
from common.api import id_param, page_param
from common.exceptions import ServiceError

from . import selectors
from .models import Customer, QuickReply
from .services import contacts, organise

CONTACTS_TEMPLATE = "conversations/contacts.html"
CONTACT_TEMPLATE = "conversations/contact.html"
QUICK_REPLIES_TEMPLATE = "conversations/quick_replies.html"


def _text(request: HttpRequest, name: str) -> str:
    return request.POST.get(name, "").replace("\r\n", "\n")


# --- the list --------------------------------------------------------------------------------


def _contact_list(request: HttpRequest) -> dict[str, Any]:
    """One page of the contacts the user may see: two queries (the page and its tags)."""
    user: User = request.user  # type: ignore[assignment]
    q = request.GET.get("q", "").strip()[:100]
    tag = id_param(request.GET.get("tag"))
    page = page_param(request.GET.get("page"))
    size = selectors.CONTACT_PAGE_SIZE
    rows = selectors.customer_list_visible_to(user=user, search=q, tag=tag)
    found = list(rows[(page - 1) * size : page * size + 1])
    params = {"q": q, "tag": tag or ""}

    def query(**override: Any) -> str:
        values = {**params, **override}
        return urlencode({k: v for k, v in values.items() if v not in ("", None, 1)})

    return {
        "contacts": found[:size],
        "q": q,
        "tag": tag,
        "page_number": page,
        "has_next": len(found) > size,
        "has_previous": page > 1,
        "next_params": query(page=page + 1),
        "previous_params": query(page=page - 1),
        "params": query(page=page),
        "filtered": bool(q or tag),
        "all_tags": selectors.tag_list(),
    }


@require_GET
@login_required
def contact_list(request: HttpRequest) -> HttpResponse:
    context = _contact_list(request)
    if request.htmx:  # type: ignore[attr-defined]
        response = render(request, f"{CONTACTS_TEMPLATE}#contact_list", context)
        params = context["params"]
        return push_url(
            response, reverse("conversations:contacts") + (f"?{params}" if params else "")
        )
    return render(request, CONTACTS_TEMPLATE, {"page": "contacts", **context})


# --- one contact -----------------------------------------------------------------------------


def _visible_contact(request: HttpRequest, pk: int) -> Customer:
    try:
        return selectors.customer_get_visible(user=request.user, pk=pk, with_tags=True)  # type: ignore[arg-type]
    except Customer.DoesNotExist as exc:
        raise Http404(_("No such contact.")) from exc


def _contact(request: HttpRequest, customer: Customer, **extra: Any) -> dict[str, Any]:
    """The contact and one page (``?page=``) of its conversations the user may see, most recent
    first: a fixed number of queries whatever the page."""
    user: User = request.user  # type: ignore[assignment]
    page = page_param(request.GET.get("page"))
    size = selectors.CONTACT_CONVERSATIONS_PAGE_SIZE
    rows = selectors.customer_list_conversations(user=user, customer=customer)
    found = list(rows[(page - 1) * size : page * size + 1])
    return {
        "contact": customer,
        "contact_tag_ids": {t.pk for t in customer.tags.all()},
        "contact_conversations": found[:size],
        "conversations_page": page,
        "conversations_has_next": len(found) > size,
        "conversations_has_previous": page > 1,
        "all_tags": selectors.tag_list(),
        "name_max": contacts.CONTACT_NAME_MAX,
        "notes_max": contacts.CONTACT_NOTES_MAX,
        **extra,
    }


@require_GET
@login_required
def contact_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The contact page; an htmx request for another page of its conversations gets that list
    (and the address bar follows it)."""
    customer = _visible_contact(request, pk)
    context = _contact(request, customer)
    if request.htmx:  # type: ignore[attr-defined]
        response = render(request, f"{CONTACT_TEMPLATE}#contact_conversations", context)
        page = context["conversations_page"]
        url = reverse("conversations:contact", args=[pk])
        return push_url(response, f"{url}?page={page}" if page > 1 else url)
    return render(request, CONTACT_TEMPLATE, {"page": "contacts", **context})


@require_POST
@login_required
def contact_update(request: HttpRequest, pk: int) -> HttpResponse:
    """The name and notes form (it swaps itself, saying it saved or what is wrong)."""
    customer = _visible_contact(request, pk)
    extra: dict[str, Any] = {}
    try:
        customer = contacts.customer_update(
            customer=customer,
            actor=request.user,  # type: ignore[arg-type]
            name=_text(request, "name"),
            notes=_text(request, "notes"),
        )
        extra["saved"] = True
    except ServiceError as exc:
        extra.update(
            form_error=exc.message,
            form_name=_text(request, "name"),
            form_notes=_text(request, "notes"),
        )
    if not request.htmx:  # type: ignore[attr-defined]
        if extra.get("saved"):
            return redirect("conversations:contact", pk=pk)
        return render(
            request, CONTACT_TEMPLATE, {"page": "contacts", **_contact(request, customer, **extra)}
        )
    return render(request, f"{CONTACT_TEMPLATE}#contact_form", _contact(request, customer, **extra))


@require_POST
@login_required
def contact_tags(request: HttpRequest, pk: int) -> HttpResponse:
    customer = _visible_contact(request, pk)
    tag_ids = [i for i in (id_param(v) for v in request.POST.getlist("tags")) if i]
    extra: dict[str, Any] = {}
    try:
        organise.customer_tags_set(customer=customer, actor=request.user, tag_ids=tag_ids)  # type: ignore[arg-type]
        extra["tags_saved"] = True
    except ServiceError as exc:
        extra["tags_error"] = exc.message
    customer = _visible_contact(request, pk)
    if not request.htmx:  # type: ignore[attr-defined]
        return redirect("conversations:contact", pk=pk)
    return render(request, f"{CONTACT_TEMPLATE}#contact_tags", _contact(request, customer, **extra))


# --- the agent's own quick replies -----------------------------------------------------------


def _own_replies(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    user: User = request.user  # type: ignore[assignment]
    return {
        "own_replies": list(selectors.quick_reply_list_visible_to(user=user).filter(owner=user)),
        "variables": selectors.QUICK_REPLY_VARIABLES,
        **extra,
    }


def _own_reply(request: HttpRequest, pk: int) -> QuickReply:
    try:
        reply = selectors.quick_reply_get_visible(user=request.user, pk=pk)  # type: ignore[arg-type]
    except QuickReply.DoesNotExist as exc:
        raise Http404 from exc
    if reply.owner_id != request.user.pk:
        raise Http404  # shared replies are edited in the back office
    return reply


def _replies_response(request: HttpRequest, **extra: Any) -> HttpResponse:
    context = _own_replies(request, **extra)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, f"{QUICK_REPLIES_TEMPLATE}#quick_reply_manager", context)
    return render(request, QUICK_REPLIES_TEMPLATE, {"page": "quick_replies", **context})


@require_http_methods(["GET", "POST"])
@login_required
def quick_reply_list(request: HttpRequest) -> HttpResponse:
    """GET: the agent's personal quick replies and a form for a new one; POST: create it."""
    if request.method == "GET":
        return _replies_response(request)
    fields = {
        "shortcut": request.POST.get("shortcut", ""),
        "title": request.POST.get("title", ""),
        "body": _text(request, "body"),
    }
    try:
        contacts.quick_reply_create(actor=request.user, **fields)  # type: ignore[arg-type]
    except ServiceError as exc:
        return _replies_response(request, new_error=exc.message, new=fields)
    return _replies_response(request, notice=_("Quick reply saved."))


@require_POST
@login_required
def quick_reply_edit(request: HttpRequest, pk: int) -> HttpResponse:
    reply = _own_reply(request, pk)
    fields = {
        "shortcut": request.POST.get("shortcut", ""),
        "title": request.POST.get("title", ""),
        "body": _text(request, "body"),
    }
    try:
        contacts.quick_reply_update(reply=reply, actor=request.user, **fields)  # type: ignore[arg-type]
    except ServiceError as exc:
        return _replies_response(request, edit_error=exc.message, edit_pk=reply.pk)
    return _replies_response(request, notice=_("Quick reply saved."))


@require_POST
@login_required
def quick_reply_delete(request: HttpRequest, pk: int) -> HttpResponse:
    reply = _own_reply(request, pk)
    contacts.quick_reply_delete(reply=reply, actor=request.user)  # type: ignore[arg-type]
    return _replies_response(request, notice=_("Quick reply deleted."))
