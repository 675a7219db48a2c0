"""The search of conversations (docs/search.md): one selector for the API's ``?search=`` and the
console's inbox, and the time limit its queries run under.

A conversation matches when its customer's name contains the text (ignoring accents and case),
when the digits of the text (3 or more) are part of the customer's phone number, or when one of
its messages holds the words of the text (full-text search: Portuguese stemming, accents and
case ignored; ``"quoted words"`` are a phrase, ``-word`` excludes, ``or`` between words).

On PostgreSQL it reads the indexes of migration 0013 (``search_vector`` of the messages, trigram
indexes of the customers' names and phone digits); on SQLite a plain ``icontains`` over the same
fields stands in. The visibility rule is applied by the caller's queryset (``rows``), which the
search only narrows.

This is a room of the app's selectors (``selectors.py`` is past the house's 800 lines).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import OperationalError, connections, transaction
from django.db.models import (
    BooleanField,
    CharField,
    Exists,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
)
from django.utils.translation import gettext

from common.exceptions import ServiceError

from .error_codes import ConversationErrorCode
from .models import Conversation, Customer, Message
from .text import text_unaccent

SEARCH_MAX_LENGTH = 200
PHONE_MIN_DIGITS = 3
TEXT_SEARCH_CONFIG = "pt_unaccent"  # migration 0013


class SearchTooSlow(ServiceError):  # noqa: N818 - reads better at call sites
    """The search ran past ``SEARCH_STATEMENT_TIMEOUT_MS`` and was cancelled."""

    def __init__(self) -> None:
        super().__init__(
            gettext("The search took too long. Try more specific words or a filter."),
            code=ConversationErrorCode.SEARCH_TIMEOUT,
        )


class Unaccent(Func):
    """SQL ``UNACCENT(text)``: on SQLite the Python :func:`text_unaccent` registered under that
    name when a connection opens (``conversations.apps``)."""

    function = "UNACCENT"
    output_field = CharField()


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isascii() and ch.isdigit())


def _like_contains(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _Matches(Func):
    """The search's PostgreSQL condition on the conversations' own table (migrations 0013, 0014),
    qualified with the alias the query gives that table:

    - its search document holds the words (``conv_search_document_idx``), or it has no document
      yet and one of its messages does (``conv_search_missing_idx``, then its messages);
    - or its customer is one of those whose name or phone digits match (their trigram indexes),
      as ``customer_id = ANY(ARRAY(…))``: an array computed once, that the customer index reads.

    Every arm is an index scan, so PostgreSQL picks, by the words' statistics, between walking
    the conversations in activity order until a page is full (a common word) and fetching the
    few that match then sorting them (a rare word, a name, nothing at all).
    """

    output_field = BooleanField()

    def __init__(self, text: str) -> None:
        super().__init__(F("pk"))
        self.text = text

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        pk, pk_params = compiler.compile(self.source_expressions[0])
        table = pk.rsplit(".", 1)[0]  # "alias" of conversations_conversation
        query = "websearch_to_tsquery(%s::regconfig, %s)"
        words = [TEXT_SEARCH_CONFIG, self.text]
        customers, customer_params = (
            ["search_name LIKE %s"],
            [_like_contains(text_unaccent(self.text).lower())],
        )
        digits = _digits(self.text)
        if len(digits) >= PHONE_MIN_DIGITS:
            customers.append("phone_digits LIKE %s")
            customer_params.append(_like_contains(digits))
        # The SQL is this module's constants and the compiler's alias; the values are parameters.
        sql = (
            f"({table}.search_document @@ {query}"  # noqa: S608
            f" OR ({table}.search_document IS NULL"
            f" AND sd_conversation_messages_match({pk}, {query}))"
            f" OR {table}.customer_id = ANY(ARRAY(SELECT id FROM conversations_customer"
            f" WHERE {' OR '.join(customers)})))"
        )
        return sql, [*words, *pk_params, *words, *customer_params]


def _search_fallback(text: str) -> Q:
    """SQLite: the customer's name and any message's text contain the text (accents and case
    ignored), or its digits are part of the phone number (quotes aside)."""
    plain = text_unaccent(text.replace('"', "")).strip()
    match: Q = Q(  # type: ignore[assignment]
        Exists(
            Customer.objects.annotate(plain_name=Unaccent("name")).filter(
                pk=OuterRef("customer_id"), plain_name__icontains=plain
            )
        )
    ) | Exists(
        Message.objects.annotate(plain_body=Unaccent("body")).filter(
            conversation=OuterRef("pk"), plain_body__icontains=plain
        )
    )
    digits = _digits(text)
    if len(digits) >= PHONE_MIN_DIGITS:
        match |= Q(customer__phone__contains=digits)
    return match


def conversation_list_search(*, rows: QuerySet[Conversation], text: str) -> QuerySet[Conversation]:
    """``rows`` (already limited to what the user may see) narrowed to those matching ``text``;
    their order is kept (most recent activity first). Run it under :func:`search_time_limit`."""
    text = text.strip()[:SEARCH_MAX_LENGTH]
    if not text:
        return rows
    if connections[rows.db].vendor == "postgresql":
        return rows.filter(_Matches(text))
    return rows.filter(_search_fallback(text))


def _timed_out(exc: OperationalError) -> bool:
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) == "57014"  # query_canceled


@contextmanager
def search_time_limit(*, using: str = "default") -> Iterator[None]:
    """Run the queries inside under ``SET LOCAL statement_timeout`` (PostgreSQL,
    ``SEARCH_STATEMENT_TIMEOUT_MS``): a storm of searches never holds the database. A query
    cancelled for it raises :class:`SearchTooSlow`. Elsewhere, a plain block."""
    connection = connections[using]
    timeout = int(settings.SEARCH_STATEMENT_TIMEOUT_MS)
    if connection.vendor != "postgresql" or timeout <= 0:
        yield
        return
    try:
        with transaction.atomic(using=using):
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(timeout)])
            yield
    except OperationalError as exc:
        if _timed_out(exc):
            raise SearchTooSlow() from exc
        raise
