"""Issue 13 §1 "Organise": tags and priorities — who may change them, the history rows and the
``conversation.updated`` events they leave, the admins' automatic rules (which only raise), the
queue's order, and the API of contract §10 (fields, filters, ordering, query counts)."""

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar

import pytest
import time_machine
from django.db import IntegrityError
from django.utils import timezone

from accounts.tests.factories import UserFactory
from common.events import DomainEvent
from common.exceptions import NotPermitted, ServiceError
from conversations import selectors, services
from conversations.models import (
    Conversation,
    ConversationEvent,
    ConversationStatus,
    Customer,
    Direction,
    EventKind,
    Priority,
    PriorityRule,
    RuleCondition,
    SenderKind,
    Tag,
)
from conversations.services import organise
from conversations.tasks import priority_rules_sweep
from conversations.tests.factories import ConversationFactory, MessageFactory
from supportdesk.tests.api_support import api_env, assert_error_shape, bearer

pytestmark = pytest.mark.django_db


class Recorder:
    """A domain-event handler that keeps what was emitted (inside the transaction)."""

    events: ClassVar[list[DomainEvent]] = []

    def in_transaction(self, events: Sequence[DomainEvent]) -> None:
        Recorder.events.extend(events)


@pytest.fixture
def emitted(settings: Any) -> list[DomainEvent]:
    Recorder.events = []
    settings.DOMAIN_EVENT_HANDLERS = [
        *settings.DOMAIN_EVENT_HANDLERS,
        "conversations.tests.test_organise.Recorder",
    ]
    return Recorder.events


def _updates(emitted: list[DomainEvent]) -> list[Any]:
    return [e for e in emitted if e.type == "conversation.updated"]


def _history(conversation: Any, kind: str) -> list[ConversationEvent]:
    return list(ConversationEvent.objects.filter(conversation=conversation, kind=kind))


# --- tags -----------------------------------------------------------------------------------------


def test_only_admins_manage_tags_and_names_are_unique_ignoring_case(
    admin_user: Any, supervisor: Any, agent: Any
) -> None:
    vip = organise.tag_create(actor=admin_user, name="  VIP  ", color="#DC2626")
    assert (vip.name, vip.color) == ("VIP", "#dc2626")
    for person in (supervisor, agent):
        with pytest.raises(NotPermitted):
            organise.tag_create(actor=person, name="Outro", color="#000000")
        with pytest.raises(NotPermitted):
            organise.tag_delete(actor=person, tag=vip)
    with pytest.raises(ServiceError) as taken:
        organise.tag_create(actor=admin_user, name="vip", color="#000000")
    assert taken.value.code == "tag_name_taken"
    with pytest.raises(ServiceError) as bad_colour:
        organise.tag_create(actor=admin_user, name="Boleto", color="red;x:1")
    assert bad_colour.value.code == "tag_invalid"
    renamed = organise.tag_update(actor=admin_user, tag=vip, name="Cliente VIP")
    assert renamed.name == "Cliente VIP"


def test_deleting_a_tag_leaves_a_line_in_the_history_of_the_conversations_that_had_it(
    admin_user: Any, support: Any, emitted: list[DomainEvent]
) -> None:
    vip, late = Tag.objects.create(name="VIP"), Tag.objects.create(name="Atraso")
    tagged, other = ConversationFactory(department=support), ConversationFactory()
    tagged.tags.add(vip, late)
    other.tags.add(late)

    organise.tag_delete(actor=admin_user, tag=vip)

    (row,) = ConversationEvent.objects.filter(kind=EventKind.TAGS_CHANGED)
    assert row.conversation_id == tagged.pk
    assert [t["name"] for t in row.before["tags"]] == ["Atraso", "VIP"]
    assert [t["name"] for t in row.after["tags"]] == ["Atraso"]
    (update,) = _updates(emitted)
    assert [t["name"] for t in update.conversation["tags"]] == ["Atraso"]


def test_the_database_refuses_twin_names_and_bad_colours() -> None:
    Tag.objects.create(name="Atraso", color="#123456")
    with pytest.raises(IntegrityError):
        Tag.objects.create(name="ATRASO", color="#123456")


def test_the_database_refuses_a_colour_that_is_not_rrggbb() -> None:
    with pytest.raises(IntegrityError):
        Tag.objects.create(name="Errado", color="red")


def test_an_agent_tags_a_queue_conversation_with_history_and_event(
    agent: Any, support: Any, emitted: list[DomainEvent]
) -> None:
    conversation = ConversationFactory(department=support)
    vip, late = Tag.objects.create(name="VIP"), Tag.objects.create(name="Atraso")

    result = organise.conversation_tags_set(
        conversation=conversation, actor=agent, tag_ids=[vip.pk, late.pk]
    )

    assert {t.name for t in result.tags.all()} == {"VIP", "Atraso"}
    (row,) = _history(conversation, EventKind.TAGS_CHANGED)
    assert row.actor == agent
    assert row.before == {"tags": []}
    assert [t["name"] for t in row.after["tags"]] == ["Atraso", "VIP"]
    (update,) = _updates(emitted)
    assert update.changes == ["tags"]
    assert [t["name"] for t in update.conversation["tags"]] == ["Atraso", "VIP"]
    # the same tags again change nothing
    organise.conversation_tags_set(
        conversation=conversation, actor=agent, tag_ids=[late.pk, vip.pk]
    )
    assert len(_history(conversation, EventKind.TAGS_CHANGED)) == 1


def test_an_agent_cannot_tag_a_colleagues_conversation_nor_an_unknown_tag(
    agent: Any, support: Any
) -> None:
    colleague = UserFactory(role="agent", departments=[support])
    theirs = ConversationFactory(department=support, assigned_to=colleague, status="open")
    vip = Tag.objects.create(name="VIP")
    with pytest.raises(NotPermitted):
        organise.conversation_tags_set(conversation=theirs, actor=agent, tag_ids=[vip.pk])
    mine = ConversationFactory(department=support, assigned_to=agent, status="open")
    with pytest.raises(ServiceError) as unknown:
        organise.conversation_tags_set(conversation=mine, actor=agent, tag_ids=[vip.pk + 99])
    assert unknown.value.code == "unknown_tag"


def test_contact_tags_show_in_the_history_of_its_conversations_in_progress(
    agent: Any, other_agent: Any, support: Any, emitted: list[DomainEvent]
) -> None:
    conversation = ConversationFactory(department=support)
    vip = Tag.objects.create(name="VIP")
    with pytest.raises(Customer.DoesNotExist):  # out of the other agent's reach
        organise.customer_tags_set(
            customer=conversation.customer, actor=other_agent, tag_ids=[vip.pk]
        )

    organise.customer_tags_set(customer=conversation.customer, actor=agent, tag_ids=[vip.pk])

    (row,) = _history(conversation, EventKind.TAGS_CHANGED)
    assert row.after == {"contact_tags": [{"id": vip.pk, "name": "VIP"}]}
    (update,) = _updates(emitted)
    assert update.conversation["customer"]["tags"] == [
        {"id": vip.pk, "name": "VIP", "color": "#6b7280"}
    ]


# --- priority -------------------------------------------------------------------------------------


def test_priority_set_by_an_agent_writes_history_and_emits(
    agent: Any, support: Any, emitted: list[DomainEvent]
) -> None:
    conversation = ConversationFactory(department=support)

    organise.conversation_priority_set(conversation=conversation, actor=agent, priority="urgent")

    conversation.refresh_from_db()
    assert conversation.priority == Priority.URGENT
    (row,) = _history(conversation, EventKind.PRIORITY_CHANGED)
    assert (row.actor, row.before, row.after) == (
        agent,
        {"priority": "normal"},
        {"priority": "urgent"},
    )
    (update,) = _updates(emitted)
    assert (update.changes, update.conversation["priority"]) == (["priority"], "urgent")


def test_who_may_set_the_priority(
    agent: Any, other_agent: Any, supervisor: Any, support: Any
) -> None:
    colleague = UserFactory(role="agent", departments=[support])
    theirs = ConversationFactory(department=support, assigned_to=colleague, status="open")
    with pytest.raises(NotPermitted):
        organise.conversation_priority_set(conversation=theirs, actor=agent, priority="high")
    with pytest.raises(NotPermitted):  # another department's agent does not even see it
        organise.conversation_priority_set(conversation=theirs, actor=other_agent, priority="high")
    organise.conversation_priority_set(conversation=theirs, actor=supervisor, priority="high")
    with pytest.raises(ServiceError):
        organise.conversation_priority_set(conversation=theirs, actor=supervisor, priority="max")


# --- automatic priorities -------------------------------------------------------------------------


def _inbound(conversation: Any, body: str) -> None:
    services.message_record_inbound(conversation=conversation, body=body)


def test_words_in_the_customers_message_raise_the_priority_ignoring_accents_and_case(
    support: Any, emitted: list[DomainEvent]
) -> None:
    PriorityRule.objects.create(
        name="Cancelamento",
        condition=RuleCondition.KEYWORDS,
        keywords="cancelar, procon",
        priority=Priority.URGENT,
    )
    calm = ConversationFactory(department=support)
    angry = ConversationFactory(department=support)

    _inbound(calm, "Bom dia, uma dúvida sobre o boleto")
    _inbound(angry, "Quero CANCELÁR agora")

    calm.refresh_from_db()
    angry.refresh_from_db()
    assert (calm.priority, angry.priority) == ("normal", "urgent")
    (row,) = _history(angry, EventKind.PRIORITY_CHANGED)
    assert row.actor is None
    assert row.after == {"priority": "urgent", "rule": "Cancelamento"}
    created = [e for e in emitted if e.type == "message.created"]
    assert created[-1].conversation["priority"] == "urgent"  # type: ignore[attr-defined]
    assert [u.conversation["id"] for u in _updates(emitted)] == [angry.pk]


def test_a_contact_tag_rule_and_rules_never_lower_a_priority(
    agent: Any, support: Any, admin_user: Any
) -> None:
    vip = organise.tag_create(actor=admin_user, name="VIP", color="#dc2626")
    PriorityRule.objects.create(
        name="VIP", condition=RuleCondition.CONTACT_TAG, tag=vip, priority=Priority.HIGH
    )
    tagged = ConversationFactory(department=support)
    tagged.customer.tags.add(vip)
    urgent = ConversationFactory(department=support)
    urgent.customer.tags.add(vip)
    organise.conversation_priority_set(conversation=urgent, actor=agent, priority="urgent")

    _inbound(tagged, "oi")
    _inbound(urgent, "oi")

    tagged.refresh_from_db()
    urgent.refresh_from_db()
    assert (tagged.priority, urgent.priority) == ("high", "urgent")


def test_inactive_rules_do_nothing(support: Any) -> None:
    PriorityRule.objects.create(
        name="Off", condition=RuleCondition.KEYWORDS, keywords="urgente", is_active=False
    )
    conversation = ConversationFactory(department=support)
    _inbound(conversation, "é urgente")
    conversation.refresh_from_db()
    assert conversation.priority == "normal"


def test_the_beat_raises_customers_waiting_too_long_and_only_them(
    agent: Any, support: Any, emitted: list[DomainEvent]
) -> None:
    PriorityRule.objects.create(
        name="Espera 30 min", condition=RuleCondition.WAITING, minutes=30, priority="high"
    )
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        waiting = ConversationFactory(department=support, last_inbound_at=start)
        answered = ConversationFactory(
            department=support, assigned_to=agent, status="open", last_inbound_at=start
        )
        MessageFactory(
            conversation=answered,
            direction=Direction.OUT,
            sender=SenderKind.AGENT,
            status="sent",
            wa_message_id=None,
        )
        recent = ConversationFactory(department=support)
        bot = ConversationFactory(status=ConversationStatus.BOT, last_inbound_at=start)
    with time_machine.travel(start + timedelta(minutes=29), tick=False):
        assert priority_rules_sweep() == 0
    with time_machine.travel(start + timedelta(minutes=31), tick=False):
        recent.last_inbound_at = timezone.now()
        recent.save(update_fields=["last_inbound_at"])
        assert priority_rules_sweep() == 1
        assert priority_rules_sweep() == 0  # idempotent
    priorities = {
        c.pk: c.priority
        for c in Conversation.objects.filter(pk__in=[waiting.pk, answered.pk, recent.pk, bot.pk])
    }
    assert priorities == {
        waiting.pk: "high",
        answered.pk: "normal",
        recent.pk: "normal",
        bot.pk: "normal",
    }
    assert [u.conversation["id"] for u in _updates(emitted)] == [waiting.pk]


def test_the_rules_sweep_is_in_the_beat_schedule(settings: Any) -> None:
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "conversations.tasks.priority_rules_sweep" in tasks


# --- the queue's order ----------------------------------------------------------------------------


def _queue(support: Any) -> dict[str, Any]:
    now = timezone.now()
    return {
        "newest_normal": ConversationFactory(department=support, last_inbound_at=now),
        "oldest_normal": ConversationFactory(
            department=support, last_inbound_at=now - timedelta(minutes=40)
        ),
        "new_urgent": ConversationFactory(
            department=support, priority="urgent", last_inbound_at=now - timedelta(minutes=1)
        ),
        "high": ConversationFactory(
            department=support, priority="high", last_inbound_at=now - timedelta(minutes=5)
        ),
        "low": ConversationFactory(
            department=support, priority="low", last_inbound_at=now - timedelta(hours=3)
        ),
    }


QUEUE_ORDER = ["new_urgent", "high", "oldest_normal", "newest_normal", "low"]


def test_the_console_queue_lists_the_most_urgent_then_the_longest_waiting(
    agent: Any, support: Any
) -> None:
    rows = _queue(support)
    page = selectors.conversation_list_inbox(user=agent, query=selectors.InboxQuery(tab="queue"))
    assert [c.pk for c in page.conversations] == [rows[k].pk for k in QUEUE_ORDER]


def test_console_filters_by_tag_and_priority(agent: Any, support: Any) -> None:
    rows = _queue(support)
    vip = Tag.objects.create(name="VIP")
    rows["low"].tags.add(vip)
    by_tag = selectors.InboxQuery.from_params({"tab": "all", "tag": str(vip.pk)})
    assert [
        c.pk for c in selectors.conversation_list_inbox(user=agent, query=by_tag).conversations
    ] == [rows["low"].pk]
    assert by_tag.params() == f"tab=all&tag={vip.pk}"
    urgent = selectors.InboxQuery.from_params({"tab": "all", "priority": "urgent"})
    assert [
        c.pk for c in selectors.conversation_list_inbox(user=agent, query=urgent).conversations
    ] == [rows["new_urgent"].pk]
    assert selectors.InboxQuery.from_params({"priority": "max"}).priority == ""


# --- API ------------------------------------------------------------------------------------------


@pytest.mark.usefixtures(api_env.__name__)
def test_api_pending_list_is_the_queue_order_and_filters(agent: Any, support: Any) -> None:
    rows = _queue(support)
    client = bearer(agent)
    body = client.get("/api/v1/conversations?status=pending").json()
    assert [r["id"] for r in body["results"]] == [rows[k].pk for k in QUEUE_ORDER]
    vip = Tag.objects.create(name="VIP", color="#dc2626")
    rows["high"].tags.add(vip)
    tagged = client.get(f"/api/v1/conversations?tag={vip.pk}").json()["results"]
    assert [r["id"] for r in tagged] == [rows["high"].pk]
    assert tagged[0]["tags"] == [{"id": vip.pk, "name": "VIP", "color": "#dc2626"}]
    assert tagged[0]["priority"] == "high"
    urgent = client.get("/api/v1/conversations?priority=urgent").json()["results"]
    assert [r["id"] for r in urgent] == [rows["new_urgent"].pk]
    assert_error_shape(client.get("/api/v1/conversations?priority=max"), 400)


@pytest.mark.usefixtures(api_env.__name__)
def test_api_list_with_tags_costs_the_same_whatever_the_rows(
    agent: Any, support: Any, django_assert_num_queries: Any
) -> None:
    client = bearer(agent)
    vip, late = Tag.objects.create(name="VIP"), Tag.objects.create(name="Atraso")

    def fetch() -> int:
        # auth user, count, page, the rows' tags, their contacts' tags
        with django_assert_num_queries(5):
            return len(client.get("/api/v1/conversations?page_size=100").json()["results"])

    for _ in range(2):
        ConversationFactory(department=support).tags.add(vip, late)
    assert fetch() == 2
    for _ in range(15):
        c = ConversationFactory(department=support)
        c.tags.add(vip)
        c.customer.tags.add(late)
    assert fetch() == 17


@pytest.mark.usefixtures(api_env.__name__)
def test_api_tags_crud_and_setting_them(admin_user: Any, agent: Any, support: Any) -> None:
    admin = bearer(admin_user)
    created = admin.post("/api/v1/tags", {"name": "VIP", "color": "#DC2626"}, format="json")
    assert created.status_code == 201, created.content
    tag = created.json()
    assert tag["color"] == "#dc2626"
    assert_error_shape(
        admin.post("/api/v1/tags", {"name": "vip", "color": "#000000"}, format="json"),
        400,
        "tag_name_taken",
    )
    assert_error_shape(
        admin.post("/api/v1/tags", {"name": "X", "color": "javascript:"}, format="json"), 400
    )
    assert_error_shape(
        bearer(agent).post("/api/v1/tags", {"name": "Y", "color": "#000000"}, format="json"),
        403,
    )
    assert [t["name"] for t in bearer(agent).get("/api/v1/tags").json()] == ["VIP"]

    conversation = ConversationFactory(department=support)
    client = bearer(agent)
    put = client.put(
        f"/api/v1/conversations/{conversation.pk}/tags", {"tags": [tag["id"]]}, format="json"
    )
    assert put.status_code == 200, put.content
    assert [t["name"] for t in put.json()["tags"]] == ["VIP"]
    patched = client.patch(
        f"/api/v1/conversations/{conversation.pk}", {"priority": "urgent"}, format="json"
    )
    assert patched.json()["priority"] == "urgent"
    contact = client.put(
        f"/api/v1/contacts/{conversation.customer_id}/tags", {"tags": [tag["id"]]}, format="json"
    )
    assert contact.json()["tags"][0]["name"] == "VIP"
    history = client.get(f"/api/v1/conversations/{conversation.pk}/history").json()["results"]
    kinds = [item["event"]["kind"] for item in history if item["event"]]
    assert kinds.count("tags_changed") == 2
    assert "priority_changed" in kinds

    renamed = admin.patch(f"/api/v1/tags/{tag['id']}", {"name": "Cliente VIP"}, format="json")
    assert renamed.json()["name"] == "Cliente VIP"
    assert admin.delete(f"/api/v1/tags/{tag['id']}").status_code == 204
    assert client.get(f"/api/v1/conversations/{conversation.pk}").json()["tags"] == []


# --- console --------------------------------------------------------------------------------------

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def client(client: Any, settings: Any) -> Any:
    settings.SECURE_SSL_REDIRECT = False  # the test client speaks plain HTTP
    client.cookies["django_language"] = "en"
    return client


def test_the_pane_shows_the_history_of_tags_and_priorities_escaped(
    client: Any, agent: Any, support: Any, admin_user: Any
) -> None:
    client.force_login(agent)
    conversation = ConversationFactory(department=support)
    bad = organise.tag_create(
        actor=admin_user, name="<img src=x onerror=alert(1)>", color="#dc2626"
    )
    PriorityRule.objects.create(
        name="Urgente", condition=RuleCondition.KEYWORDS, keywords="urgente", priority="high"
    )
    _inbound(conversation, "é urgente")
    organise.customer_tags_set(customer=conversation.customer, actor=agent, tag_ids=[bad.pk])

    response = client.post(
        f"/c/{conversation.pk}/organise/",
        {"priority": "urgent", "tags": [str(bad.pk)]},
        **HTMX,
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "The rule “Urgente” raised the priority: High" in html
    assert "set the priority: Urgent" in html
    assert "changed the contact's tags" in html
    assert 'class="priority priority-urgent"' in html
    assert "inbox:refresh" in response.headers["HX-Trigger"]  # the row changes at once


def test_an_agent_cannot_organise_a_colleagues_conversation_in_the_console(
    client: Any, agent: Any, support: Any
) -> None:
    colleague = UserFactory(role="agent", departments=[support])
    theirs = ConversationFactory(department=support, assigned_to=colleague, status="open")
    client.force_login(agent)
    page = client.get(f"/c/{theirs.pk}/", **HTMX).content.decode()
    assert 'id="organise-popover"' not in page
    answer = client.post(f"/c/{theirs.pk}/organise/", {"priority": "urgent"}, **HTMX)
    assert "You cannot change the priority of this conversation." in answer.content.decode()
    theirs.refresh_from_db()
    assert theirs.priority == "normal"


# --- back office ----------------------------------------------------------------------------------


def test_admins_manage_tags_and_rules_in_the_back_office_supervisors_only_look(
    client: Any, admin_user: Any, supervisor: Any
) -> None:
    client.force_login(admin_user)
    added = client.post(
        "/admin/conversations/tag/add/", {"name": "VIP", "color": "#DC2626"}, follow=True
    )
    assert added.status_code == 200
    assert Tag.objects.get().color == "#dc2626"
    twin = client.post("/admin/conversations/tag/add/", {"name": "vip", "color": "#000000"})
    assert twin.status_code == 200  # the form again, with the error
    assert "There is already a tag with that name." in twin.content.decode()
    assert Tag.objects.count() == 1
    rule = client.post(
        "/admin/conversations/priorityrule/add/",
        {"name": "Sem tag", "condition": "contact_tag", "priority": "high", "order": 0},
    )
    assert rule.status_code == 200  # the form again: a tag rule needs its tag
    assert not PriorityRule.objects.exists()

    client.force_login(supervisor)
    assert client.get("/admin/conversations/tag/").status_code == 200
    assert client.get("/admin/conversations/priorityrule/").status_code == 200
    assert client.get("/admin/conversations/tag/add/").status_code == 403
    assert client.get("/admin/conversations/priorityrule/add/").status_code == 403
