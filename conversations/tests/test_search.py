"""The search (``conversations.search``, issue 15): the same results through the API's
``?search=`` and the console's inbox — phrases, words with or without accents, any case, part of
a phone number, a name — newest first, never past what the user may see; capped counts; the
statement timeout's clear answer. PostgreSQL runs the full-text path (migration 0013), SQLite the
``icontains`` fallback."""

import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from conversations import search
from conversations.models import Conversation
from conversations.selectors import conversation_tab_summary
from conversations.services import InboundMessage, message_record_inbound_many
from conversations.tests.factories import (
    ConversationFactory,
    CustomerFactory,
    MessageFactory,
    search_limit_queries,
)
from supportdesk.tests.api_support import api_env, assert_error_shape, bearer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]

HTMX = {"HTTP_HX_REQUEST": "true"}
postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the full-text path is PostgreSQL's"
)
sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite fallback")


@pytest.fixture(autouse=True)
def _plain_http(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def agent_client(client: Any, agent: Any) -> Any:
    client.force_login(agent)
    return client


def api_ids(user: Any, text: str) -> list[int]:
    response = bearer(user).get("/api/v1/conversations", {"search": text})
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def console_ids(client: Any, text: str) -> list[int]:
    html = client.get("/inbox/", {"tab": "all", "q": text}, **HTMX).content.decode()
    return [int(part.split('"', 1)[0]) for part in html.split('data-conversation-id="')[1:]]


@pytest.fixture
def desk(support: Any, sales: Any) -> dict[str, Any]:
    now = timezone.now()
    boleto = ConversationFactory(
        department=support,
        customer=CustomerFactory(name="Paula Reis", phone="+5511911112222"),
        last_message_at=now - timedelta(minutes=5),
    )
    MessageFactory(conversation=boleto, body="Preciso da segunda via do boleto, não chegou")
    name = ConversationFactory(
        department=support,
        customer=CustomerFactory(name="Sebastião Simões", phone="+5521933334444"),
        last_message_at=now - timedelta(minutes=1),
    )
    MessageFactory(conversation=name, body="Bom dia")
    phone = ConversationFactory(
        department=support,
        customer=CustomerFactory(name="Carla", phone="+5511987650002"),
        last_message_at=now - timedelta(minutes=3),
    )
    MessageFactory(conversation=phone, body="A entrega atrasou")
    hidden = ConversationFactory(
        department=sales,
        customer=CustomerFactory(name="Paulo Simões", phone="+5531955556666"),
        last_message_at=now,
    )
    MessageFactory(conversation=hidden, body="Quero a segunda via do boleto, não chegou")
    return {"boleto": boleto.pk, "name": name.pk, "phone": phone.pk, "hidden": hidden.pk}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("segunda via", "boleto"),  # a phrase
        ('"segunda via"', "boleto"),  # quoted
        ("boleto", "boleto"),  # a word
        ("BOLETO", "boleto"),  # any case
        ("não chegou", "boleto"),  # with accents
        ("NAO CHEGOU", "boleto"),  # without accents
        ("simoes", "name"),  # a name without its accents
        ("SEBASTIÃO", "name"),
        ("sebastiao simoes", "name"),
        ("98765", "phone"),  # part of a phone number
        ("(11) 98765-0002", "phone"),  # written as people write it
        ("650002", "phone"),
    ],
)
def test_api_and_console_find_the_same(
    desk: dict[str, Any], agent: Any, agent_client: Any, text: str, key: str
) -> None:
    assert api_ids(agent, text) == [desk[key]]
    assert console_ids(agent_client, text) == [desk[key]]


def test_nothing_matches(desk: dict[str, Any], agent: Any, agent_client: Any) -> None:
    assert api_ids(agent, "zzqqxx") == []
    assert console_ids(agent_client, "zzqqxx") == []
    assert api_ids(agent, "12") == []  # too few digits to be a phone number's part


def test_newest_first(desk: dict[str, Any], supervisor: Any, client: Any) -> None:
    # "simoes" finds the hidden one (the newest) and the name; "chegou" the hidden and boleto
    assert api_ids(supervisor, "simoes") == [desk["hidden"], desk["name"]]
    assert api_ids(supervisor, "chegou") == [desk["hidden"], desk["boleto"]]
    client.force_login(supervisor)
    assert console_ids(client, "simoes") == [desk["hidden"], desk["name"]]


def test_the_search_never_reaches_past_what_the_agent_may_see(
    desk: dict[str, Any], agent: Any, agent_client: Any, supervisor: Any
) -> None:
    # the hidden conversation (Vendas) matches every one of these, and the agent is in Suporte
    for text in ("Paulo", "5531955", "quero a segunda via"):
        assert desk["hidden"] in api_ids(supervisor, text)
        assert desk["hidden"] not in api_ids(agent, text)
        assert desk["hidden"] not in console_ids(agent_client, text)


@postgresql_only
def test_words_match_by_their_stem_on_postgresql(desk: dict[str, Any], agent: Any) -> None:
    assert api_ids(agent, "boletos") == [desk["boleto"]]
    assert api_ids(agent, "entregas atrasadas") == [desk["phone"]]


@sqlite_only
def test_sqlite_falls_back_to_contains(desk: dict[str, Any], agent: Any) -> None:
    assert api_ids(agent, "bolet") == [desk["boleto"]]  # part of a word
    assert api_ids(agent, "via do bol") == [desk["boleto"]]


@postgresql_only
def test_a_phrase_never_runs_from_one_message_into_the_next(support: Any, agent: Any) -> None:
    # given a conversation whose messages end with "segunda" and start with "via"
    split: Any = ConversationFactory(department=support)
    MessageFactory(conversation=split, body="Pago na segunda")
    MessageFactory(conversation=split, body="Via pix, obrigado")
    # then the phrase does not find it, its words do (a conversation holds them together)
    assert api_ids(agent, '"segunda via"') == []
    assert api_ids(agent, "segunda pix") == [split.pk]


@postgresql_only
def test_the_search_keeps_up_with_messages_as_they_arrive(support: Any, agent: Any) -> None:
    conversation: Any = ConversationFactory(department=support)
    assert api_ids(agent, "reembolso") == []
    # the intake's batch (one INSERT of several messages), then one message, then an edit
    message_record_inbound_many(
        items=[
            InboundMessage(conversation=conversation, type="text", body=body)
            for body in ("Quero o reembolso", "do pedido 123")
        ]
    )
    assert api_ids(agent, "reembolso pedido") == [conversation.pk]
    message: Any = MessageFactory(conversation=conversation, body="Obrigada")
    assert api_ids(agent, "obrigada") == [conversation.pk]
    message.body = "Cancelamento confirmado"
    message.save()
    assert api_ids(agent, "cancelamento") == [conversation.pk]


@postgresql_only
def test_a_conversation_without_its_document_is_still_found(support: Any, agent: Any) -> None:
    # as one older than migration 0014 before its backfill reaches it, or past the document's size
    older: Any = ConversationFactory(department=support)
    MessageFactory(conversation=older, body="Preciso da nota fiscal")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE conversations_conversation SET search_document = NULL WHERE id = %s",
            [older.pk],
        )
    assert api_ids(agent, "nota fiscal") == [older.pk]
    assert api_ids(agent, "fiscal boleto") == []


def test_many_matches_come_newest_first_page_by_page(
    support: Any, agent: Any, agent_client: Any
) -> None:
    now = timezone.now()
    activity: dict[int, Any] = {}
    for minutes in range(30):  # more than a page, created in another order than their activity
        moment = now - timedelta(minutes=(minutes * 7) % 30)
        conversation: Any = ConversationFactory(department=support, last_message_at=moment)
        MessageFactory(conversation=conversation, body="Qual o prazo de reembolso?")
        activity[conversation.pk] = moment
    MessageFactory(conversation=ConversationFactory(department=support), body="Bom dia")
    newest_first = sorted(activity, key=activity.__getitem__, reverse=True)
    body = bearer(agent).get("/api/v1/conversations", {"search": "reembolso"}).json()
    assert body["count"] == 30 and body["count_capped"] is False
    assert [row["id"] for row in body["results"]] == newest_first[:25]
    second = bearer(agent).get(body["next"]).json()
    assert [row["id"] for row in second["results"]] == newest_first[25:]
    assert console_ids(agent_client, "reembolso") == newest_first[:25]


# --- counts and queries --------------------------------------------------------------------------


def test_api_search_query_count_is_fixed(
    agent: Any, support: Any, django_assert_num_queries: Any
) -> None:
    client = bearer(agent)

    def fetch() -> int:
        # auth user, count, page, tags, contacts' tags (+ on PostgreSQL: the time limit and
        # the matching customers)
        with django_assert_num_queries(5 + search_limit_queries()):
            response = client.get("/api/v1/conversations", {"search": "boleto", "page_size": 100})
        return len(response.json()["results"])

    for _ in range(2):
        MessageFactory(conversation=ConversationFactory(department=support), body="boleto")
    assert fetch() == 2
    for _ in range(15):
        MessageFactory(conversation=ConversationFactory(department=support), body="boleto")
    assert fetch() == 17


def test_counts_stop_at_the_cap(
    settings: Any, supervisor: Any, support: Any, client: Any, django_assert_num_queries: Any
) -> None:
    settings.LIST_COUNT_CAP = 3
    for _ in range(5):
        ConversationFactory(department=support, status="open")
    body = bearer(supervisor).get("/api/v1/conversations", {"page_size": 2}).json()
    assert body["count"] == 3 and body["count_capped"] is True
    assert len(body["results"]) == 2 and body["next"]
    small = bearer(supervisor).get("/api/v1/conversations", {"status": "closed"}).json()
    assert small["count"] == 0 and small["count_capped"] is False
    # the console's tabs say "3+"
    client.force_login(supervisor)
    html = client.get("/?tab=all").content.decode()
    assert 'data-count="all">3+</span>' in html


def test_a_search_counts_up_to_its_own_cap(settings: Any, supervisor: Any, support: Any) -> None:
    settings.SEARCH_COUNT_CAP = 3
    for _ in range(5):
        MessageFactory(conversation=ConversationFactory(department=support), body="reembolso")
    body = bearer(supervisor).get("/api/v1/conversations", {"search": "reembolso"}).json()
    assert body["count"] == 3 and body["count_capped"] is True
    assert len(body["results"]) == 3
    # the list without a search keeps LIST_COUNT_CAP
    whole = bearer(supervisor).get("/api/v1/conversations").json()
    assert whole["count"] == 5 and whole["count_capped"] is False


def test_a_common_name_is_found_as_a_rare_one(
    monkeypatch: pytest.MonkeyPatch, desk: dict[str, Any], supervisor: Any
) -> None:
    # more customers match than go into the query as a list: the sub-query stands in
    monkeypatch.setattr(search, "CUSTOMERS_LISTED", 1)
    assert api_ids(supervisor, "simoes") == [desk["hidden"], desk["name"]]
    assert api_ids(supervisor, "31955556666") == [desk["hidden"]]


def test_tab_counts_cost_one_query_capped(
    settings: Any, supervisor: Any, support: Any, django_assert_num_queries: Any
) -> None:
    settings.LIST_COUNT_CAP = 2
    for _ in range(4):
        ConversationFactory(department=support, status="pending", unread_count=1)
    with django_assert_num_queries(1):
        summary = conversation_tab_summary(user=supervisor)
    queue = next(tab for tab in summary.tabs if tab.key == "queue")
    closed = next(tab for tab in summary.tabs if tab.key == "closed")
    assert (queue.count, queue.capped) == (2, True)
    assert (closed.count, closed.capped) == (0, False)
    assert summary.unread == 2


# --- the statement timeout -----------------------------------------------------------------------


@pytest.fixture
def huge_search(settings: Any, desk: dict[str, Any]) -> None:
    """3,000 conversations without a search document (as before migration 0014's backfill), so
    a search calls ``sd_conversation_messages_match`` on each, and a 1 ms time limit: no search
    of them ends in time."""
    settings.SEARCH_STATEMENT_TIMEOUT_MS = 1
    boleto = Conversation.objects.get(pk=desk["boleto"])
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH customer AS (INSERT INTO conversations_customer (created_at, updated_at, phone,"
            " name, notes, name_set_by_desk) SELECT now(), now(), '', 'Cliente ' || n, '', false"
            " FROM generate_series(1, 3000) AS n RETURNING id)"
            " INSERT INTO conversations_conversation (created_at, updated_at, status,"
            " customer_id, whatsapp_account_id, department_id, unread_count, priority,"
            " last_message_at, search_document)"
            " SELECT now(), now(), 'open', customer.id, %s, %s, 0, 'normal', now(), NULL"
            " FROM customer",
            [boleto.whatsapp_account_id, boleto.department_id],
        )
        cursor.execute("ANALYZE conversations_conversation")


@postgresql_only
def test_a_search_past_its_time_limit_is_a_clear_503(
    desk: dict[str, Any], agent: Any, huge_search: None
) -> None:
    response = bearer(agent).get("/api/v1/conversations", {"search": "boleto"})
    body = assert_error_shape(response, 503, "search_timeout")
    assert body["detail"].startswith("A busca demorou demais")  # the desk speaks pt-BR


@postgresql_only
def test_the_console_says_the_search_took_too_long(
    desk: dict[str, Any], agent_client: Any, huge_search: None
) -> None:
    response = agent_client.get("/inbox/", {"tab": "all", "q": "boleto"}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "A busca demorou demais" in html and "data-conversation-id=" not in html


# --- the search's turn while the intake takes a burst ------------------------------------------

BURST = [False]


def intake_in_a_burst() -> bool:
    """The port the tests point ``SEARCH_YIELD_TO`` at."""
    return BURST[0]


@pytest.fixture
def burst(settings: Any) -> Any:
    settings.SEARCH_YIELD_TO = f"{__name__}.intake_in_a_burst"
    settings.SEARCH_BURST_INTERVAL_MS = 200
    BURST[0] = True
    yield settings
    BURST[0] = False
    cache.clear()


def _take_the_next_slots(count: int = 40) -> None:
    """Other searches have the next ``count`` turns (8 s of 200 ms slots)."""
    first = int(time.time() / 0.2)
    for slot in range(first, first + count):
        cache.set(search.SLOT_KEY.format(slot), 1, timeout=30)


def test_during_a_burst_a_search_whose_turn_does_not_come_is_a_clear_503(
    desk: dict[str, Any], agent: Any, agent_client: Any, burst: Any
) -> None:
    burst.SEARCH_BURST_WAIT_SECONDS = 0.3
    _take_the_next_slots()
    response = bearer(agent).get("/api/v1/conversations", {"search": "boleto"})
    body = assert_error_shape(response, 503, "search_busy")
    assert body["detail"].startswith("A central está recebendo uma rajada")
    assert response["Retry-After"] == "1"
    html = agent_client.get("/inbox/", {"tab": "all", "q": "boleto"}, **HTMX).content.decode()
    assert "A central está recebendo uma rajada" in html and "data-conversation-id=" not in html
    # Lists without a search never wait.
    assert bearer(agent).get("/api/v1/conversations").status_code == 200

    BURST[0] = False  # the burst is over: the same search answers at once
    assert api_ids(agent, "boleto") == [desk["boleto"]]


def test_during_a_burst_searches_start_one_per_turn(
    desk: dict[str, Any], agent: Any, burst: Any, monkeypatch: Any
) -> None:
    burst.SEARCH_BURST_WAIT_SECONDS = 5.0
    add = search.shared_cache.add
    turns: list[str] = []

    def taking(key: str, *args: Any, **kwargs: Any) -> bool:
        taken = add(key, *args, **kwargs)
        if taken:
            turns.append(key)
        return taken

    monkeypatch.setattr(search.shared_cache, "add", taking)
    for _ in range(3):
        assert api_ids(agent, "boleto") == [desk["boleto"]]
    assert len(set(turns)) == 3  # each search had a turn of its own, one after the other
