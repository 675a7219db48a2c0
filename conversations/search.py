"""The search of conversations (docs/search.md): one selector for the API's ``?search=`` and the
console's inbox, and the time limit its queries run under.

A conversation matches when its customer's name contains the text (ignoring accents and case),
when the digits of the text (3 or more) are part of the customer's phone number, or when its
messages hold the words of the text (full-text search: Portuguese stemming, accents and case
ignored; ``"quoted words"`` are a phrase, said within one message, ``-word`` excludes, ``or``
between words).

On PostgreSQL it reads the conversation's own search document (migration 0014: the words of all
its messages, kept by triggers, GIN-indexed) and the trigram indexes of the customers' names and
phone digits (0013), one condition on the conversations' table, so PostgreSQL either walks them
in activity order until a page is full or reads the few matches from the indexes; on SQLite a
plain ``icontains`` over the same fields stands in. The visibility rule is applied by the
caller's queryset (``rows``), which the search only narrows.

This is a room of the app's selectors (``selectors.py`` is past the house's 800 lines).
"""

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from django.conf import settings
from django.core.cache import cache as shared_cache
from django.core.signals import setting_changed
from django.db import OperationalError, connections, transaction
from django.db.models import (
    BooleanField,
    CharField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
)
from django.db.models.expressions import RawSQL
from django.dispatch import receiver
from django.utils.module_loading import import_string
from django.utils.translation import gettext

from common.exceptions import ServiceError

from .error_codes import ConversationErrorCode
from .models import Conversation, Customer, Message
from .text import text_unaccent

SEARCH_MAX_LENGTH = 200
PHONE_MIN_DIGITS = 3
TEXT_SEARCH_CONFIG = "pt_unaccent"  # migration 0013
# Up to this many customers matching by name or phone go into the query as a list of ids.
CUSTOMERS_LISTED = 2000


class SearchTooSlow(ServiceError):  # noqa: N818 - reads better at call sites
    """The search ran past ``SEARCH_STATEMENT_TIMEOUT_MS`` and was cancelled."""

    def __init__(self) -> None:
        super().__init__(
            gettext("The search took too long. Try more specific words or a filter."),
            code=ConversationErrorCode.SEARCH_TIMEOUT,
        )


class SearchBusy(ServiceError):  # noqa: N818 - reads better at call sites
    """The intake took a burst and this search waited ``SEARCH_BURST_WAIT_SECONDS`` for its turn
    in vain."""

    def __init__(self) -> None:
        super().__init__(
            gettext("The desk is taking a burst of messages. Search again in a moment."),
            code=ConversationErrorCode.SEARCH_BUSY,
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


class _WordsMatch(Func):
    """The conversation's search document holds the words (``conv_search_document_idx``,
    migration 0014), or it has no document and one of its messages does
    (``conv_search_missing_idx``, then ``sd_conversation_messages_match``): columns of the
    conversations' own table, qualified with the alias the query gives it."""

    output_field = BooleanField()

    def __init__(self, text: str) -> None:
        super().__init__(F("pk"))
        self.text = text

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        pk, pk_params = compiler.compile(self.source_expressions[0])
        table = pk.rsplit(".", 1)[0]  # the alias of conversations_conversation
        query = "websearch_to_tsquery(%s::regconfig, %s)"
        words = [TEXT_SEARCH_CONFIG, self.text]
        # The SQL is this module's constants and the compiler's alias; the values are parameters.
        sql = (
            f"({table}.search_document @@ {query}"
            f" OR ({table}.search_document IS NULL"
            f" AND sd_conversation_messages_match({pk}, {query})))"
        )
        return sql, [*words, *pk_params, *words]


def _search_postgresql(text: str, *, using: str) -> Q:
    """The conversations whose words match, or whose customer's name or phone digits do.

    The matching customers are read first (their trigram indexes, migration 0013): when they are
    few (up to :data:`CUSTOMERS_LISTED`) their ids go into the query as a list, which PostgreSQL
    both counts (it then knows how many conversations they have) and reads through the
    conversations' customer index. So every arm is an index scan with a fair estimate, and the
    planner picks between walking the conversations in activity order until a page is full (a
    common word, a common name) and fetching the few that match then sorting them (a rare word,
    a phone number, nothing at all). A common name (more customers) stays a sub-query: the walk.
    """
    where, params = ["search_name LIKE %s"], [_like_contains(text_unaccent(text).lower())]
    digits = _digits(text)
    if len(digits) >= PHONE_MIN_DIGITS:
        where.append("phone_digits LIKE %s")
        params.append(_like_contains(digits))
    customers = Customer.objects.using(using).filter(
        ExpressionWrapper(RawSQL(" OR ".join(where), params), output_field=BooleanField())  # noqa: S611
    )
    listed = list(customers.order_by().values_list("pk", flat=True)[: CUSTOMERS_LISTED + 1])
    if len(listed) > CUSTOMERS_LISTED:
        return Q(_WordsMatch(text)) | Q(customer_id__in=customers.values("pk"))
    return Q(_WordsMatch(text)) | Q(customer_id__in=listed)


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
    their order is kept (most recent activity first). Call it and read the rows under
    :func:`search_time_limit`: on PostgreSQL it reads the matching customers at once (one query)."""
    text = text.strip()[:SEARCH_MAX_LENGTH]
    if not text:
        return rows
    if connections[rows.db].vendor == "postgresql":
        return _customers_after_the_page(rows.filter(_search_postgresql(text, using=rows.db)))
    return rows.filter(_search_fallback(text))


def _customers_after_the_page(rows: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """The customers fetched for the page's rows (one query), not joined to every match: when
    PostgreSQL reads the matches from the indexes then sorts them, a join would be paid for
    each of them (a hash of the whole customers table for a phone number's 12 matches)."""
    related = rows.query.select_related
    if not isinstance(related, dict) or "customer" not in related:
        return rows
    others = [name for name in related if name != "customer"]
    return rows.select_related(None).select_related(*others).prefetch_related("customer")


def _timed_out(exc: OperationalError) -> bool:
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) == "57014"  # query_canceled


@cache
def _yield_to(path: str) -> Callable[[], bool]:
    found: Callable[[], bool] = import_string(path)
    return found


@receiver(setting_changed)
def _forget_yield_to(*, setting: str, **kwargs: Any) -> None:
    if setting == "SEARCH_YIELD_TO":
        _yield_to.cache_clear()


def _intake_burst() -> bool:
    """Is the channel's intake taking a burst (``settings.SEARCH_YIELD_TO``, a port: the core
    does not import the channel)? Never fatal: a failing port says no."""
    path = getattr(settings, "SEARCH_YIELD_TO", "")
    if not path:
        return False
    try:
        return bool(_yield_to(path)())
    except Exception:
        return False


SLOT_KEY = "conversations:search-slot:{}"


def search_turn() -> None:
    """While the intake takes a burst, searches start one at a time across the desk, one every
    ``SEARCH_BURST_INTERVAL_MS`` (a cache key per slot: the first to add it has the slot); a
    search waits for its turn up to ``SEARCH_BURST_WAIT_SECONDS``, then :class:`SearchBusy`.
    So however many people search, the acknowledgements of Meta's deliveries keep the machine.
    Out of a burst (the usual case) it costs one cache read."""
    interval = int(settings.SEARCH_BURST_INTERVAL_MS) / 1000
    if interval <= 0 or not _intake_burst():
        return
    deadline = time.monotonic() + float(settings.SEARCH_BURST_WAIT_SECONDS)
    while True:
        slot = int(time.time() / interval)
        if shared_cache.add(SLOT_KEY.format(slot), 1, timeout=max(2, round(interval * 4))):
            return
        # Wake at the next slot, a little spread so that waiters do not all ask at once.
        pause = (slot + 1) * interval - time.time() + random.uniform(0, interval / 4)  # noqa: S311
        if time.monotonic() + pause > deadline:
            raise SearchBusy()
        time.sleep(max(pause, 0.001))
        if not _intake_burst():
            return


@contextmanager
def search_time_limit(*, using: str = "default") -> Iterator[None]:
    """Run the queries inside under ``SET LOCAL statement_timeout`` (PostgreSQL,
    ``SEARCH_STATEMENT_TIMEOUT_MS``), without parallel workers, after waiting for the search's
    turn while the intake takes a burst (:func:`search_turn`): a storm of searches never holds
    the database nor starves the webhook. A query cancelled for the time limit raises
    :class:`SearchTooSlow`, a turn that did not come :class:`SearchBusy`. Elsewhere, a plain
    block (the turn still taken)."""
    search_turn()
    connection = connections[using]
    timeout = int(settings.SEARCH_STATEMENT_TIMEOUT_MS)
    if connection.vendor != "postgresql" or timeout <= 0:
        yield
        return
    try:
        with transaction.atomic(using=using):
            with connection.cursor() as cursor:
                # And no parallel workers: a search is a few short queries, which workers slow
                # down on a busy box (they start, then mostly wait), and a storm of searches
                # would take every core.
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, true),"
                    " set_config('max_parallel_workers_per_gather', '0', true)",
                    [str(timeout)],
                )
            yield
    except OperationalError as exc:
        if _timed_out(exc):
            raise SearchTooSlow() from exc
        raise
