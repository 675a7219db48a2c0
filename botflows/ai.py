"""The OpenAI-compatible model behind the bot's free-text answers, summaries and agent drafts.

Any server speaking ``/v1/chat/completions`` works (``OPENAI_BASE_URL``). Answers come back as a
JSON document validated against :class:`BotAnswer`; anything else (timeout, HTTP error, malformed
output) is recorded and reported as a failure so the engine hands the customer to a human.
Every call writes an :class:`AIAnswerLog` row with its token usage and latency.
"""

import logging
import re
import time
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

import openai
from django.conf import settings
from pydantic import BaseModel, Field, ValidationError

from conversations.models import Conversation, Direction, SenderKind
from departments.models import Department

from . import selectors
from .models import AIAnswerLog, AIOutcome, KnowledgeArticle

logger = logging.getLogger(__name__)


class BotAnswer(BaseModel):
    answer: str = Field(max_length=4000)
    intent: Literal["answer", "handoff"]
    department: str | None = None
    confidence: float = Field(ge=0, le=1)


@dataclass(frozen=True)
class AIResult:
    outcome: str  # an AIOutcome
    answer: BotAnswer | None
    log: AIAnswerLog

    @property
    def can_answer(self) -> bool:
        return self.outcome == AIOutcome.ANSWERED and self.answer is not None


def ai_available(*, config: dict[str, Any]) -> bool:
    return bool(settings.OPENAI_API_KEY) and bool(config.get("ai_enabled", True))


def _client(*, timeout: float) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=settings.OPENAI_API_KEY,
        base_url=settings.OPENAI_BASE_URL or None,
        timeout=timeout,
        max_retries=0,
    )


def _words(text: str) -> set[str]:
    plain = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    return {w for w in re.findall(r"[a-z0-9]+", plain) if len(w) > 2}


def knowledge_for(*, question: str, limit: int = 5) -> list[KnowledgeArticle]:
    """The active articles sharing the most words with the question (all of them when few)."""
    articles = list(KnowledgeArticle.objects.filter(is_active=True).select_related("department"))
    if len(articles) <= limit:
        return articles
    asked = _words(question)
    scored = sorted(
        articles,
        key=lambda a: -len(asked & _words(f"{a.title} {a.keywords} {a.body}")),
    )
    return scored[:limit]


def _transcript(conversation: Conversation, limit: int = 12) -> list[dict[str, str]]:
    turns = []
    for message in selectors.bot_transcript(conversation=conversation, limit=limit):
        if not message.body.strip() or message.sender == SenderKind.SYSTEM:
            continue
        role = "user" if message.direction == Direction.IN else "assistant"
        turns.append({"role": role, "content": message.body[:2000]})
    return turns


def _answer_schema(department_names: list[str]) -> dict[str, Any]:
    department: dict[str, Any] = {"type": ["string", "null"]}
    if department_names:
        department = {"anyOf": [{"type": "string", "enum": department_names}, {"type": "null"}]}
    return {
        "type": "object",
        "properties": {
            "answer": {"type": "string", "description": "The reply to the customer."},
            "intent": {"type": "string", "enum": ["answer", "handoff"]},
            "department": department,
            "confidence": {"type": "number", "description": "0 to 1"},
        },
        "required": ["answer", "intent", "department", "confidence"],
        "additionalProperties": False,
    }


def _parse_answer(content: str | None) -> BotAnswer:
    text = (content or "").strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, flags=re.DOTALL)
    if fenced:
        text = fenced.group(1)
    return BotAnswer.model_validate_json(text)


def _usage(response: Any) -> dict[str, int | None]:
    usage = getattr(response, "usage", None)
    return {
        "prompt_tokens": getattr(usage, "prompt_tokens", None),
        "completion_tokens": getattr(usage, "completion_tokens", None),
        "total_tokens": getattr(usage, "total_tokens", None),
    }


def _call(
    *,
    conversation: Conversation | None,
    purpose: str,
    messages: list[dict[str, str]],
    config: dict[str, Any],
    response_format: dict[str, Any] | None = None,
) -> tuple[Any | None, str, str, dict[str, Any]]:
    """One request; returns (response, content, failure outcome or "", log fields)."""
    started = time.monotonic()
    outcome: str
    fields: dict[str, Any] = {"conversation": conversation, "purpose": purpose}
    try:
        client = _client(timeout=float(config.get("ai_timeout_seconds") or 20))
        kwargs: dict[str, Any] = {"model": settings.OPENAI_MODEL, "messages": messages}
        if response_format is not None:
            kwargs["response_format"] = response_format
        response = client.chat.completions.create(**kwargs)
    except openai.APITimeoutError as exc:
        fields |= {"error": str(exc) or "timeout"}
        outcome = AIOutcome.TIMEOUT
        response, content = None, ""
    except (openai.OpenAIError, ValueError) as exc:
        fields |= {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        outcome = AIOutcome.ERROR
        response, content = None, ""
    else:
        outcome = ""
        fields |= _usage(response)
        choices = getattr(response, "choices", None) or []
        content = (choices[0].message.content or "") if choices else ""
    fields["latency_ms"] = int((time.monotonic() - started) * 1000)
    return response, content, outcome, fields


def ai_answer(*, conversation: Conversation, config: dict[str, Any]) -> AIResult:
    """Ask the model to answer the customer's latest message from the knowledge base."""
    departments = list(
        Department.objects.filter(is_active=True).order_by("name").values_list("name", flat=True)
    )
    transcript = _transcript(conversation)
    question = next((t["content"] for t in reversed(transcript) if t["role"] == "user"), "")
    articles = knowledge_for(question=question)
    knowledge = "\n\n".join(f"## {a.title}\n{a.body}" for a in articles) or "(empty)"
    system = (
        f"{config.get('ai_system_prompt') or ''}\n\n"
        "Reply with a JSON object: answer (text for the customer), intent ('answer' when the "
        "knowledge base answers the question, 'handoff' when a human should take over), "
        "department (one of the departments below that fits, or null) and confidence (0 to 1).\n"
        f"Departments: {', '.join(departments) or '(none)'}\n\n# Knowledge base\n{knowledge}"
    )
    response_format = {
        "type": "json_schema",
        "json_schema": {
            "name": "bot_answer",
            "strict": True,
            "schema": _answer_schema(departments),
        },
    }
    _response, content, outcome, fields = _call(
        conversation=conversation,
        purpose="answer",
        messages=[{"role": "system", "content": system}, *transcript],
        config=config,
        response_format=response_format,
    )
    answer: BotAnswer | None = None
    if not outcome:
        try:
            answer = _parse_answer(content)
        except (ValidationError, ValueError) as exc:
            outcome = AIOutcome.INVALID
            fields["error"] = f"{exc}"[:2000]
            fields["answer"] = content[:4000]
    if answer is not None:
        fields |= {
            "intent": answer.intent,
            "confidence": answer.confidence,
            "department_name": (answer.department or "")[:100],
            "answer": answer.answer,
        }
        if answer.intent == "handoff":
            outcome = AIOutcome.HANDOFF
        elif not answer.answer.strip() or answer.confidence < float(
            config.get("ai_min_confidence") or 0
        ):
            outcome = AIOutcome.LOW_CONFIDENCE
        else:
            outcome = AIOutcome.ANSWERED
    log = AIAnswerLog.objects.create(model=settings.OPENAI_MODEL, outcome=outcome, **fields)
    if outcome not in (AIOutcome.ANSWERED, AIOutcome.HANDOFF, AIOutcome.LOW_CONFIDENCE):
        logger.warning("AI answer failed for conversation %s: %s", conversation.pk, outcome)
    return AIResult(outcome=outcome, answer=answer, log=log)


def _plain(
    *, conversation: Conversation, purpose: str, instruction: str, config: dict[str, Any]
) -> str | None:
    transcript = _transcript(conversation, limit=30)
    lines = "\n".join(
        f"{'Customer' if t['role'] == 'user' else 'Us'}: {t['content']}" for t in transcript
    )
    _response, content, outcome, fields = _call(
        conversation=conversation,
        purpose=purpose,
        messages=[
            {"role": "system", "content": instruction},
            {"role": "user", "content": lines or "(no messages)"},
        ],
        config=config,
    )
    text = content.strip()
    if not outcome and not text:
        outcome, fields["error"] = AIOutcome.INVALID, "empty answer"
    fields["answer"] = text[:4000]
    AIAnswerLog.objects.create(
        model=settings.OPENAI_MODEL, outcome=outcome or AIOutcome.ANSWERED, **fields
    )
    return text if not outcome else None


def ai_summary(*, conversation: Conversation, config: dict[str, Any]) -> str | None:
    return _plain(
        conversation=conversation,
        purpose="summary",
        instruction=(
            "Summarise in one or two short sentences, for the support agent taking over, what "
            "the customer wants and what they already told the bot. Use the customer's language."
        ),
        config=config,
    )


def ai_draft(*, conversation: Conversation, config: dict[str, Any]) -> str | None:
    articles = knowledge_for(
        question=" ".join(
            m.body for m in selectors.bot_transcript(conversation=conversation, limit=5)
        )
    )
    knowledge = "\n\n".join(f"## {a.title}\n{a.body}" for a in articles) or "(empty)"
    return _plain(
        conversation=conversation,
        purpose="draft",
        instruction=(
            "Write the support agent's next WhatsApp reply to this customer: short, polite, in "
            "the customer's language, using the knowledge base when it helps. Reply with the "
            f"message text only.\n\n# Knowledge base\n{knowledge}"
        ),
        config=config,
    )
