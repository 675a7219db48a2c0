"""Customer satisfaction (CSAT, contract §9): asked when a conversation an agent handled is
closed, answered with a score from 1 to 5 and an optional comment.

The question goes out only inside the 24-hour window (the channel says whether free-form messages
are accepted now). The customer answers by tapping a row of the list (``csat:<n>``) or by
writing the digit; a reply that is neither, or that comes after ``CSAT_REPLY_HOURS``, is not a
score: it starts a new conversation as any message would, and the survey expires. The score
belongs to the agent who had the conversation when it was closed (the last handling segment).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.events import emit

from .. import events
from ..channels import conversation_channel
from ..models import (
    Conversation,
    ConversationStatus,
    CsatStatus,
    CsatSurvey,
    EventKind,
    Message,
    MessageType,
)
from ..replies import reply_choice
from ..serializers import conversation_payload
from . import message_create_automated
from ._base import _lock, _record

REPLY_PREFIX = "csat:"
OPEN = (CsatStatus.REQUESTED, CsatStatus.AWAITING_COMMENT)


@dataclass(frozen=True)
class CsatTexts:
    """What the customer reads (admins edit them as bot settings)."""

    question: str
    button: str
    options: tuple[str, str, str, str, str]  # the titles of 1..5
    comment_prompt: str
    thanks: str


def csat_payload(survey: CsatSurvey) -> dict[str, Any]:
    """The CSAT resource (outgoing webhooks' ``data``, the console)."""
    agent = survey.agent
    return {
        "id": survey.pk,
        "conversation": survey.conversation_id,
        "agent": {"id": agent.pk, "name": agent.name} if agent is not None else None,
        "score": survey.score,
        "comment": survey.comment,
        "status": survey.status,
        "created_at": survey.created_at.isoformat() if survey.created_at else None,
        "scored_at": survey.scored_at.isoformat() if survey.scored_at else None,
    }


def _question(texts: CsatTexts) -> tuple[str, dict[str, Any]]:
    """(readable body, Meta's ``interactive`` list) of the question."""
    rows = [
        {"id": f"{REPLY_PREFIX}{n}", "title": f"{n} - {title}"[:24]}
        for n, title in zip(range(5, 0, -1), reversed(texts.options), strict=True)
    ]
    body = "\n".join([texts.question, *(row["title"] for row in rows)])
    interactive = {
        "type": "list",
        "body": {"text": texts.question[:1024]},
        "action": {"button": texts.button[:20], "sections": [{"title": "CSAT", "rows": rows}]},
    }
    return body, interactive


@transaction.atomic
def csat_request(*, conversation: Conversation, texts: CsatTexts) -> CsatSurvey | None:
    """Ask the customer of a just-closed conversation to score it; None when nothing is asked
    (CSAT off, no agent handled it, the 24-hour window closed, a survey open already)."""
    if not settings.CSAT_ENABLED:
        return None
    conversation = _lock(conversation)
    if not conversation.is_closed or conversation.assigned_to_id is None:
        return None
    if not conversation_channel(conversation).capabilities(conversation=conversation).free_form:
        return None
    if conversation.csat_surveys.filter(status__in=OPEN).exists():
        return None
    body, interactive = _question(texts)
    message = message_create_automated(
        conversation=conversation,
        body=body,
        type=MessageType.INTERACTIVE,
        raw_payload={"interactive": interactive},
    )
    return CsatSurvey.objects.create(
        conversation=conversation, agent_id=conversation.assigned_to_id, request_message=message
    )


def _fresh(queryset: Any) -> Any:
    since = timezone.now() - timedelta(hours=settings.CSAT_REPLY_HOURS)
    return queryset.filter(
        status__in=OPEN,
        created_at__gte=since,
        conversation__status=ConversationStatus.CLOSED,
    )


def csat_pending_for(*, pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], CsatSurvey]:
    """The open survey, if any, of each (customer id, number id), in one query."""
    pairs = list(pairs)
    if not pairs:
        return {}
    surveys = _fresh(
        CsatSurvey.objects.filter(
            conversation__customer_id__in={c for c, _a in pairs},
            conversation__whatsapp_account_id__in={a for _c, a in pairs},
        )
    ).select_related("conversation")
    wanted = set(pairs)
    found: dict[tuple[int, int], CsatSurvey] = {}
    for survey in surveys.order_by("created_at"):  # the newest wins
        key = (survey.conversation.customer_id, survey.conversation.whatsapp_account_id)
        if key in wanted:
            found[key] = survey
    return found


def csat_score_of(*, text: str, reply_id: str = "") -> int | None:
    """The score in a reply: a tapped row (``csat:4``) or the digit alone (``4``)."""
    if reply_id.startswith(REPLY_PREFIX):
        value = reply_id.removeprefix(REPLY_PREFIX)
    else:
        value = text.strip().rstrip(".!")
    return int(value) if value in {"1", "2", "3", "4", "5"} else None


def csat_takes(*, survey: CsatSurvey, text: str, reply_id: str = "") -> bool:
    """Is this reply the survey's answer (a score it waits for, or the optional comment)?"""
    if survey.status == CsatStatus.REQUESTED:
        return csat_score_of(text=text, reply_id=reply_id) is not None
    return survey.status == CsatStatus.AWAITING_COMMENT and bool(text.strip())


def csat_expire(*, surveys: Iterable[CsatSurvey]) -> None:
    """The customer moved on (wrote something that is not an answer): those surveys close."""
    ids = [s.pk for s in surveys]
    if ids:
        CsatSurvey.objects.filter(pk__in=ids, status__in=OPEN).update(
            status=CsatStatus.EXPIRED, updated_at=timezone.now()
        )


@transaction.atomic
def csat_answer(*, message: Message, texts: CsatTexts) -> CsatSurvey | None:
    """Take the customer's inbound ``message`` (on a closed conversation) as the open survey's
    score or comment; None when it is neither. A score emits ``csat.received`` and asks for the
    comment; the comment emits ``csat.received`` again and thanks the customer."""
    conversation = _lock(message.conversation)
    survey = (
        _fresh(CsatSurvey.objects.select_for_update(of=("self",)).filter(conversation=conversation))
        .select_related("agent")
        .first()
    )
    if survey is None:
        return None
    reply_id, title = reply_choice(message.raw_payload)
    text = title if reply_id else message.body or ""
    if not csat_takes(survey=survey, text=text, reply_id=reply_id):
        return None
    if survey.status == CsatStatus.REQUESTED:
        survey.score = csat_score_of(text=text, reply_id=reply_id)
        survey.scored_at = timezone.now()
        survey.status = CsatStatus.AWAITING_COMMENT
        follow_up = texts.comment_prompt
    else:
        survey.comment = text.strip()[:2000]
        survey.status = CsatStatus.COMPLETED
        follow_up = texts.thanks
    survey.save(update_fields=["score", "scored_at", "status", "comment", "updated_at"])
    _record(
        conversation=conversation,
        actor=None,
        kind=EventKind.CSAT_RECEIVED,
        after={"score": survey.score, "comment": survey.comment, "agent": survey.agent_id},
    )
    emit(
        events.CsatReceived(
            conversation=conversation_payload(conversation), csat=csat_payload(survey)
        )
    )
    if (
        follow_up.strip()
        and conversation_channel(conversation).capabilities(conversation=conversation).free_form
    ):
        message_create_automated(conversation=conversation, body=follow_up)
    return survey
